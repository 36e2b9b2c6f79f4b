-- Commands for the scheduling leader (itinerary/commands.py): a replica that does not
-- schedule writes run-now, cancel and job-changed requests here; the leader applies each
-- once (id chosen by the sender; taken_by says which leader took it), writes the result
-- and done_at, and the sender reads the answer back.
CREATE TABLE commands (
    id BIGINT PRIMARY KEY,
    kind VARCHAR(32) NOT NULL,
    payload TEXT NOT NULL,
    sender VARCHAR(255) NOT NULL,
    created_at TIMESTAMP NOT NULL,
    taken_by VARCHAR(255),
    done_at TIMESTAMP,
    result TEXT
);
CREATE INDEX idx_commands_done_at_id ON commands (done_at, id);
