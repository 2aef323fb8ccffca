"""Log search in the console and the API, over the dedicated log store."""
