"""A model tier: which model, where, at what price and under which limits."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Tier:
    """``api_key`` is excluded from ``repr`` so a tier can be logged or shown in an error safely."""

    name: str
    model: str
    base_url: str
    api_key: str = field(repr=False)
    input_price_per_1k: float = 0.0
    output_price_per_1k: float = 0.0
    timeout_s: float = 30.0
    max_retries: int = 2
    requests_per_minute: int = 60
    tokens_per_minute: int = 100_000
    max_output_tokens: int = 512

    @property
    def paid(self) -> bool:
        return self.input_price_per_1k > 0 or self.output_price_per_1k > 0

    def cost(self, input_tokens: int, output_tokens: int) -> float:
        return (input_tokens * self.input_price_per_1k + output_tokens * self.output_price_per_1k) / 1000
