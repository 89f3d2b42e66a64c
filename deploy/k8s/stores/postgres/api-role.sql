-- The read API's own PostgreSQL role: it reads the articles and nothing else (no writes, no DDL).
-- psql variables: api_role, api_password, database, schema, owner (the role that migrates: publish's).
CREATE ROLE :"api_role" LOGIN PASSWORD :'api_password';
GRANT CONNECT ON DATABASE :"database" TO :"api_role";
GRANT USAGE ON SCHEMA :"schema" TO :"api_role";
GRANT SELECT ON ALL TABLES IN SCHEMA :"schema" TO :"api_role";
-- Tables publish creates later (every migration) are readable too.
ALTER DEFAULT PRIVILEGES FOR ROLE :"owner" IN SCHEMA :"schema" GRANT SELECT ON TABLES TO :"api_role";
-- A second lock: even a grant made by mistake cannot be used to write.
ALTER ROLE :"api_role" SET default_transaction_read_only = on;
