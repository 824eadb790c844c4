"""What a local worker runs: a function's declared archive or image, made ready on disk and cached by content."""
