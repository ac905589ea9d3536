"""Word lists and the CEM user dictionary read by nlp.segment (data only)."""
