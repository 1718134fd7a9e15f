"""``mis-data eval``: score a vision-language model on MIS test sets as the paper does.

config (what to ask whom) → testsets (items and their images) → protocol (MIS's requests and
label mapping) → runner (answer, judge, resume) → scores (rates per group) → report (tables,
plots, comparisons); offline is the keyless rule-based backend for the demo and the tests.
"""
