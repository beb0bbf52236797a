-- The demo schema at benchmark scale (PostgreSQL): 5,000 customers, 200,000 jobs,
-- 1,000,000 operations, 100,000 notes, AS/400-style values as in fixtures/demo.
INSERT INTO CUSMST (CUSNO, CUSNM, CUSCT, CUSST, CUSSC, CRLMT, CUSDT, LSTUPD)
SELECT 10000 + i, rpad('CUSTOMER ' || i, 30), rpad('TOLEDO', 20), 'OH',
       (ARRAY['A','A','A','H','I'])[1 + i % 5], (i % 10) * 2500 + 1000,
       (88 + i % 30) * 10000 + (1 + i % 12) * 100 + (1 + i % 28), DATE '2024-01-01' + (i % 365)
FROM generate_series(1, 5000) AS g(i);

INSERT INTO JOBMST (JOBNO, JOBDS, CUSNO, STSCD, RUSHF, PLNCD, ORDDT, DUEDT, CMPDT, QTYOR, QTYCM, UNTPR)
SELECT i,
       rpad((ARRAY['BRACKET','HOUSING','SHAFT','GEAR BLANK','FLANGE','BUSHING','MANIFOLD','SPACER'])[1 + i % 8]
            || ' TYPE ' || (i % 17), 40),
       10001 + (i * 7919) % 5000,
       (ARRAY['P','R','R','H','C'])[1 + i % 5],
       CASE WHEN i % 7 = 0 THEN 'Y' ELSE 'N' END,
       (ARRAY['CLE','MIL','AKR'])[1 + i % 3],
       (98 + i % 27) * 10000 + (1 + i % 12) * 100 + (1 + i % 28),
       CASE WHEN i % 10 = 9 THEN 0 ELSE (98 + i % 27) * 10000 + (1 + (i + 1) % 12) * 100 + (1 + i % 28) END,
       CASE WHEN i % 5 = 4 THEN (98 + i % 27) * 10000 + (1 + (i + 2) % 12) * 100 + (1 + i % 28) ELSE 0 END,
       (i % 50) * 25 + 10.5,
       (i % 5) * 5,
       ((i * 7919) % 100000) + (i % 10000) / 10000.0 + 123456789000
FROM generate_series(1, 200000) AS g(i);

INSERT INTO JOBOPS (JOBNO, OPSEQ, WRKCT, OPDSC, STDHR, ACTHR, OPSTS, STRTM, LSTDT)
SELECT j, k * 10,
       (ARRAY['SAW01 ','MCH03 ','PRS02 ','PLT01 ','INS01 '])[k],
       rpad((ARRAY['CUT STOCK','MACHINE','FORM','PLATE','INSPECT'])[k], 30),
       k * 1.25, CASE WHEN (j + k) % 3 = 0 THEN 0 ELSE k * 1.25 END,
       (ARRAY['O','S','D'])[1 + (j + k) % 3],
       (6 + j % 12) * 10000 + (j % 4) * 1500,
       CASE WHEN (j + k) % 3 = 0 THEN 0 ELSE 20240000 + (1 + j % 12) * 100 + (1 + j % 28) END
FROM generate_series(1, 200000) AS a(j), generate_series(1, 5) AS b(k);

-- Notes exist before the writes are measured, as they would on a live system: analysed while
-- empty, the table would get sequential-scan plans that the gateway's long-lived prepared
-- statements keep while the writes grow it (measured: 1/12 of the rate, until autovacuum
-- analyses it again), while pgbench, starting later, plans against fresher statistics.
INSERT INTO JOBNOTE (JOBNO, NOTSQ, NOTTX, NOTBY, NOTDT)
SELECT j * 4, k, rpad('NOTE ' || k || ' ON JOB ' || (j * 4), 60), 'PLANNER', 0
FROM generate_series(1, 50000) AS a(j), generate_series(1, 2) AS b(k);

VACUUM ANALYZE;
