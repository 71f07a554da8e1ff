"""The Faust app, its topics, the embedded broker and the streaming commands."""
