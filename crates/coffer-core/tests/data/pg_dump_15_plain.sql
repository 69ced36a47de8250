--
-- PostgreSQL database dump
--

\restrict kBaSYEMqLH1DarAUf40t0UekQpMOXUT10VkBkAFgYOhWa3bHXrvqCMXXEqhPdx7

-- Dumped from database version 15.18 (Debian 15.18-0+deb12u1)
-- Dumped by pg_dump version 15.18 (Debian 15.18-0+deb12u1)

SET statement_timeout = 0;
SET lock_timeout = 0;
SET idle_in_transaction_session_timeout = 0;
SET client_encoding = 'UTF8';
SET standard_conforming_strings = on;
SELECT pg_catalog.set_config('search_path', '', false);
SET check_function_bodies = false;
SET xmloption = content;
SET client_min_messages = warning;
SET row_security = off;

ALTER TABLE IF EXISTS ONLY public.notes DROP CONSTRAINT IF EXISTS notes_pkey;
ALTER TABLE IF EXISTS ONLY app.alembic_version DROP CONSTRAINT IF EXISTS alembic_version_pkey;
ALTER TABLE IF EXISTS public.notes ALTER COLUMN id DROP DEFAULT;
DROP VIEW IF EXISTS public.v_notes;
DROP TABLE IF EXISTS public."user";
DROP SEQUENCE IF EXISTS public.notes_id_seq;
DROP TABLE IF EXISTS public.notes;
DROP TABLE IF EXISTS public.empty_one;
DROP TABLE IF EXISTS public."UPPER";
DROP TABLE IF EXISTS public."My Table ""q""";
DROP TABLE IF EXISTS app.items;
DROP TABLE IF EXISTS app.alembic_version;
DROP FUNCTION IF EXISTS public.f();
DROP TYPE IF EXISTS public.mood;
DROP SCHEMA IF EXISTS app;
--
-- Name: app; Type: SCHEMA; Schema: -; Owner: App Owner
--

CREATE SCHEMA app;


ALTER SCHEMA app OWNER TO "App Owner";

--
-- Name: mood; Type: TYPE; Schema: public; Owner: appuser
--

CREATE TYPE public.mood AS ENUM (
    'ok',
    'sad'
);


ALTER TYPE public.mood OWNER TO appuser;

--
-- Name: f(); Type: FUNCTION; Schema: public; Owner: appuser
--

CREATE FUNCTION public.f() RETURNS integer
    LANGUAGE sql
    AS $$select 1$$;


ALTER FUNCTION public.f() OWNER TO appuser;

SET default_tablespace = '';

SET default_table_access_method = heap;

--
-- Name: alembic_version; Type: TABLE; Schema: app; Owner: postgres
--

CREATE TABLE app.alembic_version (
    version_num character varying(32) NOT NULL
);


ALTER TABLE app.alembic_version OWNER TO postgres;

--
-- Name: items; Type: TABLE; Schema: app; Owner: App Owner
--

CREATE TABLE app.items (
    id bigint,
    name text
);


ALTER TABLE app.items OWNER TO "App Owner";

--
-- Name: My Table "q"; Type: TABLE; Schema: public; Owner: App Owner
--

CREATE TABLE public."My Table ""q""" (
    id integer,
    "Weird Col" text
);


ALTER TABLE public."My Table ""q""" OWNER TO "App Owner";

--
-- Name: UPPER; Type: TABLE; Schema: public; Owner: postgres
--

CREATE TABLE public."UPPER" (
    x integer
);


ALTER TABLE public."UPPER" OWNER TO postgres;

--
-- Name: empty_one; Type: TABLE; Schema: public; Owner: postgres
--

CREATE TABLE public.empty_one (
    x integer
);


ALTER TABLE public.empty_one OWNER TO postgres;

--
-- Name: notes; Type: TABLE; Schema: public; Owner: appuser
--

CREATE TABLE public.notes (
    id integer NOT NULL,
    body text,
    data bytea,
    meta json
);


ALTER TABLE public.notes OWNER TO appuser;

--
-- Name: TABLE notes; Type: COMMENT; Schema: public; Owner: appuser
--

COMMENT ON TABLE public.notes IS 'multi
line comment';


--
-- Name: notes_id_seq; Type: SEQUENCE; Schema: public; Owner: appuser
--

CREATE SEQUENCE public.notes_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


ALTER TABLE public.notes_id_seq OWNER TO appuser;

--
-- Name: notes_id_seq; Type: SEQUENCE OWNED BY; Schema: public; Owner: appuser
--

ALTER SEQUENCE public.notes_id_seq OWNED BY public.notes.id;


--
-- Name: user; Type: TABLE; Schema: public; Owner: postgres
--

CREATE TABLE public."user" (
    id integer,
    name text
);


ALTER TABLE public."user" OWNER TO postgres;

--
-- Name: v_notes; Type: VIEW; Schema: public; Owner: appuser
--

CREATE VIEW public.v_notes AS
 SELECT notes.id,
    notes.body
   FROM public.notes;


ALTER TABLE public.v_notes OWNER TO appuser;

--
-- Name: notes id; Type: DEFAULT; Schema: public; Owner: appuser
--

ALTER TABLE ONLY public.notes ALTER COLUMN id SET DEFAULT nextval('public.notes_id_seq'::regclass);


--
-- Data for Name: alembic_version; Type: TABLE DATA; Schema: app; Owner: postgres
--

COPY app.alembic_version (version_num) FROM stdin;
merge_b2
c0ffee123abc
\.


--
-- Data for Name: items; Type: TABLE DATA; Schema: app; Owner: App Owner
--

COPY app.items (id, name) FROM stdin;
1	item 1
2	item 2
3	item 3
4	item 4
5	item 5
6	item 6
7	item 7
8	item 8
9	item 9
10	item 10
11	item 11
12	item 12
13	item 13
14	item 14
15	item 15
16	item 16
17	item 17
18	item 18
19	item 19
20	item 20
\.


--
-- Data for Name: My Table "q"; Type: TABLE DATA; Schema: public; Owner: App Owner
--

COPY public."My Table ""q""" (id, "Weird Col") FROM stdin;
1	a
2	b
\.


--
-- Data for Name: UPPER; Type: TABLE DATA; Schema: public; Owner: postgres
--

COPY public."UPPER" (x) FROM stdin;
1
\.


--
-- Data for Name: empty_one; Type: TABLE DATA; Schema: public; Owner: postgres
--

COPY public.empty_one (x) FROM stdin;
\.


--
-- Data for Name: notes; Type: TABLE DATA; Schema: public; Owner: appuser
--

COPY public.notes (id, body, data, meta) FROM stdin;
1	tab\there	\\x00ff10	{"a": [1,2]}
2	line1\nline2\r\nend	\N	\N
3	back\\slash and \\. and \\N	\\x5c2e	{"s": "x\\\\ny"}
4	unicode: héllo — 日本	\\x	"str"
5	\N	\N	\N
\.


--
-- Data for Name: user; Type: TABLE DATA; Schema: public; Owner: postgres
--

COPY public."user" (id, name) FROM stdin;
1	ann
2	bob\\tab
\.


--
-- Name: notes_id_seq; Type: SEQUENCE SET; Schema: public; Owner: appuser
--

SELECT pg_catalog.setval('public.notes_id_seq', 5, true);


--
-- Name: alembic_version alembic_version_pkey; Type: CONSTRAINT; Schema: app; Owner: postgres
--

ALTER TABLE ONLY app.alembic_version
    ADD CONSTRAINT alembic_version_pkey PRIMARY KEY (version_num);


--
-- Name: notes notes_pkey; Type: CONSTRAINT; Schema: public; Owner: appuser
--

ALTER TABLE ONLY public.notes
    ADD CONSTRAINT notes_pkey PRIMARY KEY (id);


--
-- PostgreSQL database dump complete
--

\unrestrict kBaSYEMqLH1DarAUf40t0UekQpMOXUT10VkBkAFgYOhWa3bHXrvqCMXXEqhPdx7

