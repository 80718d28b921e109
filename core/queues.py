"""The names of the job queues: the listeners send to them, the workers consume them, and
rag/jobs.py declares its ingestion actors on KNOWLEDGE_QUEUE.

In the kernel so rag can name its queue without importing the bot's job definitions.
Two queues for the agent, so approvals are not stuck behind slow LLM runs.
"""

from __future__ import annotations

AGENT_QUEUE = "agent"
REVIEW_QUEUE = "review"
# rag/jobs.py's ingestion jobs. Named here with the others so the listeners can report its
# depth without importing the ingestion code (numpy, pgvector).
KNOWLEDGE_QUEUE = "knowledge"
