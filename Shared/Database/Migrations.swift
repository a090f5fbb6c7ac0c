/// Vacancy's schema, one migration per version. Never edit an applied migration: add one.
public enum Migrations {
    public static let all: [Migration] = [
        initialSchema, idempotencyBookingReference, hotSessionUpdates, publishedLevels, highDemandAlerted, bookingsByCreation,
        waitlists, startedLines, toldPositions, localTime, logEpochs, presenceReports,
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

    /// A line per full session (DESIGN.md, "Waitlists and offers"). Seats that free up go to
    /// the waiting entries that fit, in joining order, in the transaction that frees them: a
    /// trigger on `sessions` does it, so every path that frees seats (a cancel, an expired
    /// hold, a capacity increase, a reschedule away, a declined or expired offer) honours the
    /// line without having to remember to. A second trigger ends an offer when its held
    /// booking is confirmed (accepted), cancelled (declined) or expires.
    static let waitlists = Migration(
        version: 7,
        name: "waitlists and offers",
        statements: [
            """
            CREATE TABLE waitlist_entries (
                id uuid PRIMARY KEY,
                session_id uuid NOT NULL REFERENCES sessions (id),
                customer_id text NOT NULL,
                adult_count integer NOT NULL CHECK (adult_count >= 0),
                child_count integer NOT NULL CHECK (child_count >= 0),
                seats integer NOT NULL CHECK (seats > 0 AND seats = adult_count + child_count),
                status text NOT NULL DEFAULT 'waiting'
                    CHECK (status IN ('waiting', 'offered', 'accepted', 'declined', 'expired', 'left')),
                offer_seconds integer NOT NULL CHECK (offer_seconds BETWEEN 60 AND 86400),
                booking_id uuid REFERENCES bookings (id),
                line bigserial NOT NULL,
                published_position integer,
                version bigint NOT NULL DEFAULT 1,
                joined_at timestamptz NOT NULL DEFAULT now(),
                updated_at timestamptz NOT NULL DEFAULT now(),
                CONSTRAINT waitlist_offer_has_booking CHECK (status NOT IN ('offered', 'accepted') OR booking_id IS NOT NULL)
            )
            """,
            "CREATE UNIQUE INDEX waitlist_one_live_entry ON waitlist_entries (session_id, customer_id) WHERE status IN ('waiting', 'offered')",
            "CREATE INDEX waitlist_line ON waitlist_entries (session_id, line) WHERE status = 'waiting'",
            "CREATE UNIQUE INDEX waitlist_offer_booking ON waitlist_entries (booking_id) WHERE booking_id IS NOT NULL",
            "CREATE INDEX waitlist_customer ON waitlist_entries (customer_id, joined_at)",
            """
            ALTER TABLE sessions
                ADD COLUMN waiting integer NOT NULL DEFAULT 0 CHECK (waiting >= 0),
                ADD COLUMN waiting_seats integer NOT NULL DEFAULT 0 CHECK (waiting_seats >= 0)
            """,
            "ALTER TABLE changes ADD COLUMN waitlist_id uuid",
            """
            CREATE FUNCTION vacancy_offer_freed_seats() RETURNS trigger LANGUAGE plpgsql AS $$
            DECLARE
                free integer := NEW.capacity - NEW.booked - NEW.held;
                entry record;
                offer uuid;
                offered integer := 0;
                offered_seats integer := 0;
            BEGIN
                IF NEW.status <> 'scheduled' OR NEW.starts_at <= now() THEN
                    RETURN NULL;
                END IF;
                FOR entry IN
                    SELECT id, customer_id, adult_count, child_count, seats, offer_seconds FROM waitlist_entries
                    WHERE session_id = NEW.id AND status = 'waiting' ORDER BY line FOR UPDATE
                LOOP
                    EXIT WHEN free <= 0;
                    -- An entry that does not fit keeps its place; a later one that fits goes first.
                    CONTINUE WHEN entry.seats > free;
                    offer := gen_random_uuid();
                    INSERT INTO bookings (id, session_id, customer_id, adult_count, child_count, seats, status, expires_at)
                    VALUES (offer, NEW.id, entry.customer_id, entry.adult_count, entry.child_count, entry.seats, 'held',
                            now() + make_interval(secs => entry.offer_seconds));
                    UPDATE waitlist_entries SET status = 'offered', booking_id = offer, version = version + 1, updated_at = now()
                    WHERE id = entry.id;
                    INSERT INTO changes (session_id, booking_id, waitlist_id, kind)
                    VALUES (NEW.id, offer, entry.id, '\(ChangeKind.waitlistOffered.rawValue)');
                    free := free - entry.seats;
                    offered := offered + 1;
                    offered_seats := offered_seats + entry.seats;
                END LOOP;
                IF offered > 0 THEN
                    UPDATE sessions SET held = held + offered_seats, waiting = waiting - offered, waiting_seats = waiting_seats - offered_seats,
                        version = version + 1, updated_at = now()
                    WHERE id = NEW.id;
                END IF;
                RETURN NULL;
            END
            $$
            """,
            """
            CREATE TRIGGER sessions_offer_freed_seats AFTER UPDATE OF capacity, booked, held ON sessions FOR EACH ROW
            WHEN (NEW.waiting > 0 AND NEW.capacity - NEW.booked - NEW.held > OLD.capacity - OLD.booked - OLD.held)
            EXECUTE FUNCTION vacancy_offer_freed_seats()
            """,
            """
            CREATE FUNCTION vacancy_end_offer() RETURNS trigger LANGUAGE plpgsql AS $$
            DECLARE
                ended text := CASE NEW.status WHEN 'confirmed' THEN 'accepted' WHEN 'cancelled' THEN 'declined' ELSE 'expired' END;
            BEGIN
                WITH w AS (
                    UPDATE waitlist_entries SET status = ended, version = version + 1, updated_at = now()
                    WHERE booking_id = NEW.id AND status = 'offered'
                    RETURNING id, session_id
                )
                INSERT INTO changes (session_id, waitlist_id, kind)
                SELECT session_id, id, CASE ended
                    WHEN 'accepted' THEN '\(ChangeKind.waitlistAccepted.rawValue)'
                    WHEN 'declined' THEN '\(ChangeKind.waitlistDeclined.rawValue)'
                    ELSE '\(ChangeKind.waitlistExpired.rawValue)' END
                FROM w;
                RETURN NULL;
            END
            $$
            """,
            """
            CREATE TRIGGER bookings_end_offer AFTER UPDATE OF status ON bookings FOR EACH ROW
            WHEN (OLD.status = 'held' AND NEW.status <> 'held')
            EXECUTE FUNCTION vacancy_end_offer()
            """,
        ]
    )

    /// The sweep finds sessions that have started with entries still waiting, without
    /// reading every past session.
    static let startedLines = Migration(
        version: 8,
        name: "sessions with a line, by start",
        statements: ["CREATE INDEX sessions_waiting_starts_at ON sessions (starts_at) WHERE waiting > 0"]
    )

    /// The positions the calculator last told, in a table only it writes: kept on the
    /// entries, its updates locked rows the offering trigger was walking in line order, and
    /// the two deadlocked (PostgreSQL breaks that after `deadlock_timeout`, a second).
    /// No foreign key either: its `FOR KEY SHARE` would meet the trigger's `FOR UPDATE`.
    static let toldPositions = Migration(
        version: 9,
        name: "told waitlist positions",
        statements: [
            "CREATE TABLE waitlist_positions (waitlist_id uuid PRIMARY KEY, position integer NOT NULL)",
            "INSERT INTO waitlist_positions SELECT id, published_position FROM waitlist_entries WHERE published_position IS NOT NULL",
            "ALTER TABLE waitlist_entries DROP COLUMN published_position",
        ]
    )

    /// Each session in its venue's time zone; its `local_date` (the day it starts there) kept
    /// by a trigger, since `AT TIME ZONE` is not immutable enough for a generated column.
    static let localTime = Migration(
        version: 10,
        name: "sessions in local time",
        statements: [
            "ALTER TABLE sessions ADD COLUMN time_zone text NOT NULL DEFAULT 'UTC', ADD COLUMN local_date date",
            "UPDATE sessions SET local_date = (starts_at AT TIME ZONE time_zone)::date",
            "ALTER TABLE sessions ALTER COLUMN local_date SET NOT NULL",
            """
            CREATE FUNCTION vacancy_session_local_date() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                NEW.local_date := (NEW.starts_at AT TIME ZONE NEW.time_zone)::date;
                RETURN NEW;
            END
            $$
            """,
            """
            CREATE TRIGGER sessions_local_date BEFORE INSERT OR UPDATE OF starts_at, time_zone ON sessions FOR EACH ROW
            EXECUTE FUNCTION vacancy_session_local_date()
            """,
            "CREATE INDEX sessions_local_date ON sessions (local_date, starts_at)",
        ]
    )

    /// The log's epochs: one per history of the primary (its WAL timeline), begun by the
    /// event writer when it first writes on a new timeline, after a gap in the ids so that
    /// events the old primary served and the new one lacks are never reused (see `LogEpochs`).
    static let logEpochs = Migration(
        version: 11,
        name: "log epochs",
        statements: [
            """
            CREATE TABLE log_epochs (
                epoch integer PRIMARY KEY,
                timeline integer NOT NULL,
                previous_last_id bigint NOT NULL,
                first_id bigint NOT NULL,
                started_at timestamptz NOT NULL DEFAULT now(),
                CHECK (first_id > previous_last_id)
            )
            """
        ]
    )

    /// Each fan-out instance's open streams per public topic, reported every
    /// `VACANCY_PRESENCE_SECONDS`; a row not reported for three intervals no longer counts.
    static let presenceReports = Migration(
        version: 12,
        name: "presence reports",
        statements: [
            """
            CREATE TABLE presence_reports (
                instance text PRIMARY KEY,
                counts jsonb NOT NULL,
                reported_at timestamptz NOT NULL DEFAULT now()
            )
            """
        ]
    )
}
