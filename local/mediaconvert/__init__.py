"""The MediaConvert stand-in: the service's API on 127.0.0.1, its jobs run with ffmpeg against the emulated S3."""
