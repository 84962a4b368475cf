-- The PostgreSQL relay schema version 1, exactly as the first release that had it created it
-- (Protocol/relay-postgres.md, schema version 1). An upgrade test loads it into an empty database and starts the
-- current relay over it.
CREATE TABLE amanat_relay_schema (version integer NOT NULL);
CREATE TABLE relay_vault (
    id bytea PRIMARY KEY CHECK (length(id) = 16),
    relay_key bytea NOT NULL CHECK (length(relay_key) = 32),
    registered_at bigint NOT NULL
);
CREATE TABLE relay_envelope (
    vault bytea NOT NULL REFERENCES relay_vault(id) ON DELETE CASCADE,
    author bytea NOT NULL CHECK (length(author) = 32),
    seq bigint NOT NULL CHECK (seq >= 1),
    hash bytea NOT NULL CHECK (length(hash) = 32),
    authority boolean NOT NULL,
    body bytea NOT NULL,
    PRIMARY KEY (vault, author, seq)
);
CREATE INDEX relay_envelope_authority ON relay_envelope (vault) WHERE authority;
CREATE TABLE relay_nonce (
    vault bytea NOT NULL REFERENCES relay_vault(id) ON DELETE CASCADE,
    nonce bytea NOT NULL CHECK (length(nonce) = 16),
    expires bigint NOT NULL,
    PRIMARY KEY (vault, nonce)
);
CREATE INDEX relay_nonce_expires ON relay_nonce (expires);
CREATE TABLE relay_chunk (
    vault bytea NOT NULL REFERENCES relay_vault(id) ON DELETE CASCADE,
    address bytea NOT NULL CHECK (length(address) = 32),
    sealed bytea NOT NULL,
    PRIMARY KEY (vault, address)
);
ALTER TABLE relay_envelope ALTER COLUMN body SET STORAGE EXTERNAL;
ALTER TABLE relay_chunk ALTER COLUMN sealed SET STORAGE EXTERNAL;
INSERT INTO amanat_relay_schema (version) VALUES (1);
