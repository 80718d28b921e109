"""What LLM calls cost, for per-tenant cost accounting."""

from __future__ import annotations

from decimal import Decimal

# USD per million tokens (input, output), from the providers' public price lists. A model
# not listed here is recorded with its tokens and a cost of 0; LLM_PRICES adds or
# overrides entries without a release.
DEFAULT_PRICES_PER_MTOK: dict[str, tuple[Decimal, Decimal]] = {
    "gpt-4o-mini": (Decimal("0.15"), Decimal("0.60")),
    "gpt-4o": (Decimal("2.50"), Decimal("10.00")),
    "gpt-4.1-mini": (Decimal("0.40"), Decimal("1.60")),
    "gpt-4.1": (Decimal("2.00"), Decimal("8.00")),
    "llama-3.1-8b-instant": (Decimal("0.05"), Decimal("0.08")),
}

MILLION = Decimal(1_000_000)


def cost_usd(
    model: str,
    prompt_tokens: int,
    completion_tokens: int,
    prices: dict[str, tuple[Decimal, Decimal]],
) -> Decimal:
    price = prices.get(model)
    if price is None:
        return Decimal(0)
    input_price, output_price = price
    return (prompt_tokens * input_price + completion_tokens * output_price) / MILLION
