"""Quality evaluations: extraction (clean) and entities (NER) over development data."""
