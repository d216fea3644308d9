"""Reversible masking of infrastructure identifiers in prompts and answers (docs/gateway.md,
"Masking"): recognizers find them, the masker swaps them for per-session placeholders, the
store keeps the table with the session, the unmasker puts the values back into the answer."""
