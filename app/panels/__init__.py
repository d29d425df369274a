"""The window's panels. Each shows what the workspace holds and turns clicks into intents;
none imports torch or safetensors (an import-linter contract checks it)."""
