"""Developer tools: building the local envs and the committed fixtures (not part of the workflow)."""
