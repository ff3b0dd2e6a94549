"""The bounded household summary the model sees."""
