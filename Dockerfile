# One image for every process: `chatops serve`, `chatops worker`, `chatops migrate`.
FROM python:3.11-slim AS build
WORKDIR /app
COPY pyproject.toml README.md ./
COPY core core
COPY bot bot
COPY connectors connectors
COPY rag rag
COPY guardrails guardrails
COPY review review
COPY sandbox sandbox
COPY migrations migrations
COPY templates templates
RUN python -m venv /venv && /venv/bin/pip install --no-cache-dir -e .

FROM python:3.11-slim
RUN useradd --create-home --uid 10001 chatops
COPY --from=build /venv /venv
COPY --from=build /app /app
WORKDIR /app
USER chatops
ENV PATH=/venv/bin:$PATH
EXPOSE 3000
HEALTHCHECK --interval=30s --timeout=3s CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:3000/healthz', timeout=2)" || exit 1
CMD ["chatops", "serve"]
