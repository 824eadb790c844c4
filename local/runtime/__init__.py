"""Running the program's functions: worker processes, event sources, the HTTP API and its JWT authorizer."""
