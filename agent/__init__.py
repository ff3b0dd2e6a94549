"""The turn: its bounded loop and events, the model protocol and its one OpenAI adapter,
prompts, the sentence gate, verification, the narrator, the action and consent protocol."""
