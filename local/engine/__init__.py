"""The local Pulumi engine: the program evaluated under mocks that create each resource in an in-process moto server."""
