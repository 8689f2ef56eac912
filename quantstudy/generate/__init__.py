"""Stage generate (rules/generate.smk): greedy answers to a prompt set, plus teacher-forced logprobs over bf16's."""
