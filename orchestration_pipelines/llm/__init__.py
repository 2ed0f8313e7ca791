"""The LLM gateway core, free of Dagster: tiers, rate limits, response cache and the call loop.

``resources/llm.py`` wraps it as a Dagster resource; everything here runs in plain Python, which is
what the tests and the router benchmark drive.
"""

from orchestration_pipelines.llm.cache import ResponseCache
from orchestration_pipelines.llm.gateway import Backoff, LLMGateway, LLMResult
from orchestration_pipelines.llm.ratelimit import RateLimiter
from orchestration_pipelines.llm.tiers import Tier

__all__ = ["Backoff", "LLMGateway", "LLMResult", "RateLimiter", "ResponseCache", "Tier"]
