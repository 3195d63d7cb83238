"""The transactional outbox: follow-up work recorded in the same transaction as the data it is about,
then handed to RQ. If Redis is down the rows wait and a scheduled sweep enqueues them later."""
