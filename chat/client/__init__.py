"""Clients: the plain line client (scripts, pipes) and the full-screen terminal client."""
