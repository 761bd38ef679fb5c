"""The `emo-live` command line."""
