-- Raw inbound email is stored sealed (AES-GCM, bot/intake/email_store.py RawMailCipher):
-- it holds everything the sender wrote, card numbers included, which the request's
-- payload and messages hold only masked. Rows written before stay as they were (false).
ALTER TABLE email_messages ADD COLUMN raw_sealed boolean NOT NULL DEFAULT false;
