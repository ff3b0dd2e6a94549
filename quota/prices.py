"""Model prices and output limits from configuration, and what a call may cost.

Prices are per million tokens in the currency's major unit (as providers publish them) and
are held as integer micro-units per million tokens, so a cost is exact integer arithmetic:
micro-units = ceil((prompt x input + completion x output) / 1,000,000). A model with no
price is refused (fail closed), never counted as free.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

MICRO = 1_000_000
DEFAULT_MAX_TOKENS = 1024
MAX_PRICE = Decimal(10_000)  # per million tokens: a typo must not make a call cost a fortune


class PriceError(ValueError):
    """WATTWISE_MODEL_PRICES cannot be used."""


class UnpricedModel(LookupError):
    def __init__(self, model: str) -> None:
        super().__init__(f"model {model!r} has no configured price")
        self.model = model


@dataclass(frozen=True)
class ModelPrice:
    input_micro: int  # micro-units of the currency per million prompt tokens
    output_micro: int  # per million completion tokens
    max_tokens: int  # the most completion tokens one call may ask for

    def cost_micro(self, prompt_tokens: int, completion_tokens: int) -> int:
        total = prompt_tokens * self.input_micro + completion_tokens * self.output_micro
        return -(-total // MICRO)  # rounded up: never undercount


@dataclass(frozen=True)
class Prices:
    models: dict[str, ModelPrice]

    def of(self, model: str) -> ModelPrice:
        try:
            return self.models[model]
        except KeyError:
            raise UnpricedModel(model) from None

    def clamp(self, model: str, max_tokens: int | None) -> int:
        """The completion tokens a call may ask for: the client's wish, within the model's
        configured maximum (and at least 1)."""
        ceiling = self.of(model).max_tokens
        return ceiling if max_tokens is None else max(1, min(max_tokens, ceiling))


def _micro(value: object, what: str) -> int:
    try:
        price = Decimal(str(value)) if not isinstance(value, bool) else None
    except InvalidOperation:
        price = None
    if price is None or not price.is_finite() or price < 0 or price > MAX_PRICE:
        raise PriceError(f"{what} must be a number from 0 to {MAX_PRICE}, got {value!r}")
    micro = price * MICRO
    if micro != micro.to_integral_value():
        raise PriceError(f"{what} has more than 6 decimal places: {value!r}")
    return int(micro)


def parse_prices(text: str) -> Prices:
    """{"model": {"input": 0.15, "output": 0.6, "max_tokens": 1024}, ...}"""
    try:
        raw = json.loads(text, parse_float=Decimal)
    except json.JSONDecodeError as exc:
        raise PriceError(f"WATTWISE_MODEL_PRICES is not JSON: {exc}") from exc
    if not isinstance(raw, dict):
        raise PriceError("WATTWISE_MODEL_PRICES must be an object of model name -> prices")
    models = {}
    for name, entry in raw.items():
        if not isinstance(entry, dict) or not {"input", "output"} <= entry.keys():
            raise PriceError(f"model {name!r} needs an object with input and output prices")
        unknown = entry.keys() - {"input", "output", "max_tokens"}
        if unknown:
            raise PriceError(f"model {name!r} has unknown keys {sorted(unknown)}")
        max_tokens = entry.get("max_tokens", DEFAULT_MAX_TOKENS)
        if type(max_tokens) is not int or not 1 <= max_tokens <= 1_000_000:
            raise PriceError(f"model {name!r}: max_tokens must be an integer from 1 to 1000000")
        models[name] = ModelPrice(
            input_micro=_micro(entry["input"], f"{name}.input"),
            output_micro=_micro(entry["output"], f"{name}.output"),
            max_tokens=max_tokens,
        )
    return Prices(models)


def micro_units(amount: float | Decimal) -> int:
    """A money amount in the major unit (a setting) as integer micro-units, rounded down."""
    return int(Decimal(str(amount)) * MICRO)


def estimate_tokens(text: str) -> int:
    """A deliberately high estimate of a text's tokens (about 4 bytes per token in English
    text; counted as 3), for reserving before a call and for a stream cut before usage.

    surrogatepass: a lone surrogate (3 bytes) is counted like any character, not a crash."""
    return -(-len(text.encode("utf-8", "surrogatepass")) // 3)
