"""ai_models."""
