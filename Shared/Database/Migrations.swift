/// Vacancy's schema, one migration per version. Never edit an applied migration: add one.
public enum Migrations {
    public static let all: [Migration] = [
        initialSchema, idempotencyBookingReference, hotSessionUpdates, publishedLevels, highDemandAlerted, bookingsByCreation,
    ]

    static let initialSchema = Migration(
        version: 1,
        name: "sessions, bookings, changes, events, idempotency keys",
        statements: [
            """
            CREATE TABLE sessions (
                id uuid PRIMARY KEY,
                course_type text NOT NULL,
                location text NOT NULL,
                starts_at timestamptz NOT NULL,
                ends_at timestamptz NOT NULL,
                capacity integer NOT NULL DEFAULT 12 CHECK (capacity >= 0),
                booked integer NOT NULL DEFAULT 0 CHECK (booked >= 0),
                held integer NOT NULL DEFAULT 0 CHECK (held >= 0),
                status text NOT NULL DEFAULT 'scheduled' CHECK (status IN ('scheduled', 'cancelled', 'completed')),
                notes text NOT NULL DEFAULT '',
                version bigint NOT NULL DEFAULT 1,
                created_at timestamptz NOT NULL DEFAULT now(),
                updated_at timestamptz NOT NULL DEFAULT now(),
                CONSTRAINT sessions_ends_after_start CHECK (ends_at > starts_at),
                CONSTRAINT sessions_never_overbooked CHECK (booked + held <= capacity)
            )
            """,
            "CREATE INDEX sessions_starts_at ON sessions (starts_at)",
            "CREATE INDEX sessions_course_type_starts_at ON sessions (course_type, starts_at)",
            "CREATE INDEX sessions_location_starts_at ON sessions (location, starts_at)",
            """
            CREATE TABLE bookings (
                id uuid PRIMARY KEY,
                session_id uuid NOT NULL REFERENCES sessions (id),
                customer_id text NOT NULL,
                adult_count integer NOT NULL CHECK (adult_count >= 0),
                child_count integer NOT NULL CHECK (child_count >= 0),
                seats integer NOT NULL CHECK (seats > 0 AND seats = adult_count + child_count),
                status text NOT NULL CHECK (status IN ('held', 'confirmed', 'cancelled', 'expired')),
                expires_at timestamptz,
                version bigint NOT NULL DEFAULT 1,
                created_at timestamptz NOT NULL DEFAULT now(),
                updated_at timestamptz NOT NULL DEFAULT now(),
                CONSTRAINT bookings_hold_has_expiry CHECK (status <> 'held' OR expires_at IS NOT NULL)
            )
            """,
            "CREATE INDEX bookings_session_status ON bookings (session_id, status)",
            "CREATE INDEX bookings_customer_created ON bookings (customer_id, created_at)",
            "CREATE INDEX bookings_held_expiry ON bookings (expires_at) WHERE status = 'held'",
            """
            CREATE TABLE changes (
                id bigserial PRIMARY KEY,
                session_id uuid NOT NULL,
                booking_id uuid,
                kind text NOT NULL,
                created_at timestamptz NOT NULL DEFAULT now()
            )
            """,
            """
            CREATE TABLE events (
                id bigint PRIMARY KEY,
                topics text[] NOT NULL,
                type text NOT NULL,
                payload jsonb NOT NULL,
                created_at timestamptz NOT NULL DEFAULT clock_timestamp()
            )
            """,
            "CREATE INDEX events_topics ON events USING gin (topics)",
            "CREATE INDEX events_created_at ON events (created_at)",
            """
            CREATE TABLE idempotency_keys (
                caller text NOT NULL,
                key text NOT NULL,
                fingerprint text NOT NULL,
                status_code integer,
                response_body text,
                created_at timestamptz NOT NULL DEFAULT now(),
                PRIMARY KEY (caller, key)
            )
            """,
            "CREATE INDEX idempotency_keys_created_at ON idempotency_keys (created_at)",
        ]
    )

    /// Lets a replayed booking answer carry its `Location` again.
    static let idempotencyBookingReference = Migration(
        version: 2,
        name: "idempotency keys remember the booking they created",
        statements: ["ALTER TABLE idempotency_keys ADD COLUMN booking_id uuid"]
    )

    /// Every booking updates its session's row: leave room on each page so those updates
    /// stay HOT (no index writes, no bloat).
    static let hotSessionUpdates = Migration(
        version: 3,
        name: "sessions keep free space for in-page updates",
        statements: ["ALTER TABLE sessions SET (fillfactor = 40)"]
    )

    /// The level the calculator last published per session, so alerts fire on crossings.
    static let publishedLevels = Migration(
        version: 4,
        name: "availability levels last published",
        statements: [
            """
            CREATE TABLE availability_levels (
                session_id uuid PRIMARY KEY,
                level text NOT NULL,
                updated_at timestamptz NOT NULL DEFAULT now()
            )
            """
        ]
    )

    /// High-demand alerts go out once per session: remember which sessions had theirs.
    static let highDemandAlerted = Migration(
        version: 5,
        name: "availability levels remember a high-demand alert",
        statements: ["ALTER TABLE availability_levels ADD COLUMN high_demand_alerted boolean NOT NULL DEFAULT false"]
    )

    /// Demand reports (trends, peak hours) read bookings by when they were made.
    static let bookingsByCreation = Migration(
        version: 6,
        name: "bookings indexed by creation time",
        statements: ["CREATE INDEX bookings_created_at ON bookings (created_at)"]
    )
}
