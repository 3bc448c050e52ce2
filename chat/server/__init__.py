"""The chat server: an epoll event loop for sockets, chat services over in-memory state, one storage writer."""
