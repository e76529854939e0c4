"""Code the Switchboard services share: messages, topics, settings, flows, Liquid."""
