"""One module per kind of result; each turns its results into report blocks."""
