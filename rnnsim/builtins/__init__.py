"""First-party activations, initializers and heads, registered through the public hooks."""
