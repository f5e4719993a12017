-- Run once by the postgres image, when its data volume is first initialised
-- (mounted into /docker-entrypoint-initdb.d/ by deploy/compose.yaml), through psql and as
-- POSTGRES_USER, which the image makes a superuser. Each service owns one database.
CREATE DATABASE catalog;
CREATE DATABASE exchange;
CREATE DATABASE ledger;

-- The exchange's migrations need btree_gist (exclusion constraints on time ranges). They
-- create it themselves when their role may; creating it here as well means the service could
-- later run with a role that is not a superuser.
\connect exchange
CREATE EXTENSION IF NOT EXISTS btree_gist;
