"""A tiny BERT sequence classifier, built and trained here in a second, for tests that
exercise the real transformers loading and inference code without any download."""

from __future__ import annotations

from pathlib import Path

TOXIC_WORDS = ["idiot", "hate", "stupid", "moron", "ugly", "worthless"]
NICE_WORDS = ["thanks", "please", "invoice", "meeting", "help", "refund", "great", "team"]
FILLER = ["the", "you", "are", "a", "for", "my", "is", "this", "i", "and", "your", "with"]
SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
TRAINING_STEPS = 60
SEED = 7


def build_tiny_classifier(root: Path) -> dict[str, Path]:
    import torch
    from transformers import BertConfig, BertForSequenceClassification
    from transformers.models.bert import BertTokenizer

    torch.manual_seed(SEED)
    vocab = SPECIAL + TOXIC_WORDS + NICE_WORDS + FILLER
    tokenizer = BertTokenizer(vocab={token: i for i, token in enumerate(vocab)}, do_lower_case=True)
    config = BertConfig(  # num_labels goes to PretrainedConfig
        vocab_size=len(vocab),
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=64,
        num_labels=2,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )
    model = BertForSequenceClassification(config)
    texts, labels = [], []
    for i, word in enumerate(TOXIC_WORDS):
        texts.append(f"you are a {word} {FILLER[i]}")
        labels.append(1)
    for i, word in enumerate(NICE_WORDS):
        texts.append(f"{word} for {FILLER[i]} my team")
        labels.append(0)
    batch = tokenizer(texts, padding=True, return_tensors="pt")
    target = torch.tensor(labels)
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    for _ in range(TRAINING_STEPS):
        optimiser.zero_grad()
        loss = model(**batch, labels=target).loss
        loss.backward()
        optimiser.step()
    model.eval()
    dirs = {}
    for name, id2label in (
        ("toxicity", {0: "non-toxic", 1: "toxic"}),
        ("injection", {0: "SAFE", 1: "INJECTION"}),
    ):
        model.config.id2label = id2label
        model.config.label2id = {v: k for k, v in id2label.items()}
        target_dir = root / name
        model.save_pretrained(target_dir)
        tokenizer.save_pretrained(target_dir)
        dirs[name] = target_dir
    return dirs
