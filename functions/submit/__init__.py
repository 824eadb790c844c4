"""MediaConvert submitter: one MediaConvert job per pipeline job, fed by the `mediaconvert` fan-out queue."""
