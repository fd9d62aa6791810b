"""The provider layer against the scripted HTTP server: streams, usage, error mapping."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from llm.anthropic_provider import AnthropicProvider
from llm.errors import parse_retry_after
from llm.openai_provider import OpenAIProvider
from llm.provider import complete_structured
from llm.types import ChatMessage, CompletionRequest, ProviderError, StreamEnd, StructuredOutputError, TextDelta
from settings import ModelConfig
from tests.support.scripted_provider import Failure, Script, ScriptedProvider

REQUEST = CompletionRequest(messages=[ChatMessage("user", "hi")], max_tokens=32)


def openai_provider(provider: ScriptedProvider) -> OpenAIProvider:
    config = ModelConfig(name="scripted", base_url=provider.openai_url, api_key=SecretStr("test"))
    return OpenAIProvider(config, timeout=10)


def anthropic_provider(provider: ScriptedProvider) -> AnthropicProvider:
    config = ModelConfig(name="claude", provider="anthropic", base_url=provider.anthropic_url,
                         api_key=SecretStr("test"))
    return AnthropicProvider(config, timeout=10)


async def collect(stream):  # type: ignore[no-untyped-def]
    return [item async for item in stream]


async def test_openai_stream_with_empty_choices_and_usage(provider: ScriptedProvider) -> None:
    provider.reset(Script(answer_tokens=["a", "b", "c"], empty_choices_chunk=True,
                          usage={"input_tokens": 7, "output_tokens": 3}))

    items = await collect(openai_provider(provider).stream(REQUEST))

    assert "".join(item.text for item in items if isinstance(item, TextDelta)) == "abc"
    end = items[-1]
    assert isinstance(end, StreamEnd)
    assert end.usage.as_dict() == {"input_tokens": 7, "output_tokens": 3}
    assert end.finish_reason == "stop"
    assert provider.calls[0].body["stream_options"] == {"include_usage": True}


async def test_anthropic_stream_records_usage(provider: ScriptedProvider) -> None:
    provider.reset(Script(answer_tokens=["x", "y"], usage={"input_tokens": 4, "output_tokens": 2}))

    items = await collect(anthropic_provider(provider).stream(REQUEST))

    assert "".join(item.text for item in items if isinstance(item, TextDelta)) == "xy"
    assert items[-1].usage.as_dict() == {"input_tokens": 4, "output_tokens": 2}


@pytest.mark.parametrize("make", [openai_provider, anthropic_provider])
async def test_errors_map_to_retryable(provider: ScriptedProvider, make) -> None:  # type: ignore[no-untyped-def]
    cases = [
        (Failure(429, headers={"retry-after": "3"}), True, 3.0),
        (Failure(503), True, None),
        (Failure(400), False, None),
        (Failure(401), False, None),
    ]
    for failure, retryable, retry_after in cases:
        provider.reset(Script(failures=[failure]))
        with pytest.raises(ProviderError) as caught:
            await make(provider).complete(REQUEST)
        assert caught.value.retryable is retryable, failure.status
        assert caught.value.status_code == failure.status
        assert caught.value.retry_after == retry_after
        assert len(provider.calls) == 1, "the SDK must not retry on its own"


async def test_unreachable_provider_is_retryable() -> None:
    from devstack.process import free_port

    config = ModelConfig(name="gone", base_url=f"http://127.0.0.1:{free_port()}/v1", api_key=SecretStr("x"))
    with pytest.raises(ProviderError) as caught:
        await OpenAIProvider(config, timeout=5).complete(REQUEST)
    assert caught.value.retryable is True


async def test_structured_output_validates(provider: ScriptedProvider) -> None:
    from activities.prompts import Evaluation

    provider.reset(Script(evaluations=[{"score": 0.7, "reason": "ok"}, {"reason": "no score"}]))
    evaluation, usage = await complete_structured(openai_provider(provider), [ChatMessage("user", "rate")],
                                                  Evaluation, max_tokens=32, temperature=0)
    assert evaluation.score == 0.7
    assert usage.output_tokens == 5
    with pytest.raises(StructuredOutputError):
        await complete_structured(openai_provider(provider), [ChatMessage("user", "rate")], Evaluation,
                                  max_tokens=32, temperature=0)


def test_retry_after_forms() -> None:
    assert parse_retry_after({"retry-after": "2"}) == 2.0
    assert parse_retry_after({"retry-after-ms": "1500"}) == 1.5
    assert parse_retry_after({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}) == 0.0
    assert parse_retry_after({"retry-after": "soon"}) is None
    assert parse_retry_after({}) is None
    assert parse_retry_after({"retry-after": "99999"}) == 600.0
