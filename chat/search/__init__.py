"""Search: what a message is found by (`terms`) and the query language (`query`). Pure: no I/O; the storage
layer (chat.storage.search, chat.storage.search_index) runs queries and keeps the index."""
