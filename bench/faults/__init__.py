"""The fault suite (``make faults``, ``make faults-quick``): a 3-node Kafka cluster, 2 replicas of every
service, a mixed load through the public interfaces only, faults on a seeded schedule, then every execution
checked against what its flow must do. Results in ``bench/results/<date>-faults.json``."""
