"""Kafka, through its client libraries: one module per role.

- `config`: connection options (bootstrap, TLS, SASL) from `KafkaSettings`, one function per library;
- `errors`: failures classified into one sentence, and the commit errors that mean "not yours any more";
- `admin`: metadata, a topic's record-size limit, creating a missing topic;
- `producer`: what producing code sees (`LogProducer`, `ProducerTuning`) and the confluent-kafka producer;
- `kafka_python_producer`: the producer on kafka-python (`faking_data.py --kafka-client kafka-python`);
- `clients`: which library a producer runs on (`open_producer`);
- `consumer`: the lake writer's consumer on confluent-kafka, behind loglake/source.py's `SourceConsumer`.

confluent-kafka and kafka-python themselves are imported inside the functions that use them, so
importing these modules costs nothing until a client is built.
"""
