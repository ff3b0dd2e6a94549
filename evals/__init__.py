"""Evaluations of the assistant: datasets, the runner and its reports."""
