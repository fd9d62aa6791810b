"""Providers for the configured models, built once per process."""

from __future__ import annotations

from llm.anthropic_provider import AnthropicProvider
from llm.openai_provider import OpenAIProvider
from llm.provider import ChatProvider
from settings import ModelConfig, Settings


class UnknownModelError(LookupError):
    """A request named a model that is not configured."""


def build_provider(config: ModelConfig, timeout: float) -> ChatProvider:
    if config.provider == "anthropic":
        return AnthropicProvider(config, timeout)
    return OpenAIProvider(config, timeout)


class ProviderRegistry:
    """One provider client per configured model, reused across calls."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._providers: dict[str, ChatProvider] = {}

    def get(self, model_name: str) -> ChatProvider:
        provider = self._providers.get(model_name)
        if provider is not None:
            return provider
        config = self.settings.model_by_name(model_name)
        if config is None:
            configured = ", ".join(model.name for model in self.settings.models)
            raise UnknownModelError(f"model {model_name!r} is not configured; configured: {configured}")
        provider = build_provider(config, self.settings.provider_timeout_seconds)
        self._providers[model_name] = provider
        return provider

    async def close(self) -> None:
        for provider in self._providers.values():
            await provider.close()
        self._providers.clear()
