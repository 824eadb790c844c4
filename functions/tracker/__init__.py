"""The tracker Lambda: the one place that moves a job forward after ingest (renditions, MediaConvert, sweep)."""
