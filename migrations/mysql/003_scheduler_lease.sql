-- One scheduling Itinerary per database (itinerary/lease.py): the holder renews its row
-- every few seconds; another process takes it over only once it has expired.
CREATE TABLE scheduler_lease (
    name VARCHAR(64) PRIMARY KEY,
    holder VARCHAR(255) NOT NULL,
    expires_at DATETIME(6) NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
