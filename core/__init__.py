"""The kernel: what every other package builds on, importing none of them."""
