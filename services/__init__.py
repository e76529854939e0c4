"""The Switchboard services: ingress, processor, http_worker, scheduler."""
