"""Stage similarity (rules/similarity.smk): how far a scheme's answers and next-token distributions drift from bf16's."""
