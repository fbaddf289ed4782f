-- Issue 8: earlier versions cached a listing (`?list=TNDS…`) as the value of the listed node,
-- credentials included, and cached credential nodes reported in StructData listings. The
-- tree cache is only a cache: drop every such row; devices report the nodes again.
DELETE FROM tree_nodes
WHERE value LIKE '%MgmtTree%'
   OR path LIKE '%/AAuthSecret'
   OR path LIKE '%/AAuthData'
   OR path LIKE '%/ClientPW'
   OR path LIKE '%/ServerPW'
   OR path LIKE '%/ClientNonce'
   OR path LIKE '%/ServerNonce'
   OR path LIKE '%/AuthSecret'
   OR path LIKE '%/PreSharedKey'
   OR path LIKE '%/WEPKey'
   OR path LIKE '%/WEPKey/%'
   OR path LIKE '%/Password'
   OR path LIKE '%/Passphrase';
