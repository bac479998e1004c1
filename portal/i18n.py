"""French (default) and English. Keys are the English text; French is the translation table."""
from __future__ import annotations

LANGUAGES = ("fr", "en")
DEFAULT = "fr"

FR = {
    "DMP portal": "Portail DMP",
    "My health record": "Mon dossier médical",
    "Log in": "Se connecter",
    "Log out": "Se déconnecter",
    "Login": "Identifiant",
    "Password": "Mot de passe",
    "Log in with the identity provider": "Se connecter avec le fournisseur d'identité",
    "Wrong login or password.": "Identifiant ou mot de passe incorrect.",
    "Too many failed attempts. Try again in {minutes} min.": "Trop d'essais infructueux. Réessayez dans {minutes} min.",
    "The form expired. Please try again.": "Le formulaire a expiré. Veuillez réessayer.",
    "The login form expired or came from another site. Please log in again.":
        "Le formulaire de connexion a expiré ou provient d'un autre site. Veuillez vous reconnecter.",
    "The login contains characters that are not allowed.": "L'identifiant contient des caractères non autorisés.",
    "My documents": "Mes documents",
    "Documents": "Documents",
    "Who may read my record": "Qui peut consulter mon dossier",
    "Access history": "Historique des accès",
    "Type": "Type",
    "Date": "Date",
    "Author": "Auteur",
    "Facility": "Établissement",
    "Status": "Statut",
    "Title": "Titre",
    "All types": "Tous les types",
    "From": "Du",
    "To": "Au",
    "Filter": "Filtrer",
    "No document.": "Aucun document.",
    "Previous": "Précédent",
    "Next": "Suivant",
    "Page": "Page",
    "of": "sur",
    "Open": "Ouvrir",
    "Download the original": "Télécharger l'original",
    "Approved": "Validé",
    "Deprecated": "Remplacé",
    "Masked from professionals": "Masqué aux professionnels",
    "Mask from professionals": "Masquer aux professionnels",
    "Unmask": "Démasquer",
    "Hidden from the patient": "Non visible par le patient",
    "Disclose to the patient": "Rendre visible au patient",
    "Patient": "Patient",
    "Born": "Né(e) le",
    "Custodian": "Structure responsable",
    "Organisation": "Organisation",
    "Document": "Document",
    "Some media or unknown elements of this document were left out for your safety.":
        "Certains médias ou éléments inconnus de ce document ont été omis pour votre sécurité.",
    "Authorised professionals": "Professionnels autorisés",
    "Blocked professionals": "Professionnels bloqués",
    "Treating physician": "Médecin traitant",
    "None": "Aucun",
    "Authorise": "Autoriser",
    "Block": "Bloquer",
    "Set as treating physician": "Désigner comme médecin traitant",
    "Remove the treating physician": "Retirer le médecin traitant",
    "Find a professional": "Rechercher un professionnel",
    "Name or national id (RPPS)": "Nom ou identifiant national (RPPS)",
    "Search": "Rechercher",
    "No professional found.": "Aucun professionnel trouvé.",
    "Emergency access": "Accès en urgence",
    "Break-glass access by a professional in an emergency": "Accès « bris de glace » par un professionnel en urgence",
    "Access by the emergency call centre (centre 15)": "Accès par le centre de régulation (centre 15)",
    "Allowed": "Autorisé",
    "Opposed": "Refusé",
    "Allow": "Autoriser",
    "Oppose": "S'opposer",
    "Saved.": "Enregistré.",
    "When": "Quand",
    "Who": "Qui",
    "Role": "Rôle",
    "What": "Quoi",
    "Mode": "Mode",
    "Outcome": "Résultat",
    "Normal": "Normal",
    "Emergency": "Urgence",
    "Success": "Succès",
    "Failure": "Échec",
    "No access recorded yet.": "Aucun accès enregistré pour l'instant.",
    "Accesses are recorded a few seconds after they happen.":
        "Les accès apparaissent quelques secondes après avoir eu lieu.",
    "Find a patient": "Rechercher un patient",
    "Patient INS": "INS du patient",
    "You may not access this record.": "Vous n'avez pas accès à ce dossier.",
    "Emergency access (break-glass)": "Accès en urgence (bris de glace)",
    "Warning: emergency access is for a patient whose condition puts them at risk and who cannot consent. "
    "It is recorded, audited and shown to the patient.":
        "Attention : l'accès en urgence est réservé à un patient dont l'état comporte un risque immédiat et qui "
        "ne peut pas consentir. Il est tracé, audité et visible par le patient.",
    "Reason (required)": "Motif (obligatoire)",
    "I confirm an emergency": "Je confirme l'urgence",
    "A reason is required.": "Un motif est obligatoire.",
    "You are in emergency access to this record.": "Vous êtes en accès d'urgence à ce dossier.",
    "Add a document": "Ajouter un document",
    "File (CDA R2 XML or PDF)": "Fichier (CDA R2 XML ou PDF)",
    "For a PDF:": "Pour un PDF :",
    "Document title": "Titre du document",
    "Document type": "Type de document",
    "Confidentiality": "Confidentialité",
    "Visible to all authorised professionals": "Visible par tous les professionnels autorisés",
    "Not visible to the patient until disclosed": "Non visible par le patient jusqu'à sa divulgation",
    "Send": "Envoyer",
    "Document added.": "Document ajouté.",
    "The document was refused": "Le document a été refusé",
    "The file is not a CDA R2 document or a PDF.": "Le fichier n'est pas un document CDA R2 ou un PDF.",
    "The document is for another patient.": "Le document concerne un autre patient.",
    "Audit trail": "Journal d'audit",
    "User": "Utilisateur",
    "Event": "Événement",
    "Any": "Tous",
    "Export CSV": "Exporter en CSV",
    "Details": "Détails",
    "Raw XML": "XML brut",
    "Hash chain": "Chaîne de hachage",
    "Verify": "Vérifier",
    "Hash chain intact": "Chaîne de hachage intacte",
    "Hash chain broken": "Chaîne de hachage rompue",
    "records checked": "enregistrements vérifiés",
    "Participants": "Participants",
    "Objects": "Objets",
    "No record.": "Aucun enregistrement.",
    "Access refused.": "Accès refusé.",
    "Not found.": "Introuvable.",
    "Language": "Langue",
    "Skip to content": "Aller au contenu",
    "Home": "Accueil",
    "Description": "Description",
    "Purpose": "Finalité",
    "Record": "Enregistrement",
    "Source": "Source",
    "The document shown below is a PDF.": "Le document ci-dessous est un PDF.",
    "Show the PDF": "Afficher le PDF",
    "Login with OpenID Connect failed.": "La connexion OpenID Connect a échoué.",
    "Professional": "Professionnel",
    "Auditor": "Auditeur",
    "Emergency accesses are highlighted.": "Les accès en urgence sont mis en évidence.",
    "This professional": "Ce professionnel",
    "National id": "Identifiant national",
    "Name": "Nom",
    "Actions": "Actions",
    "Upload a document for this patient": "Déposer un document pour ce patient",
    "Every access to your record by a professional or a health system, newest first. Emergency accesses are "
    "highlighted.": "Chaque accès à votre dossier par un professionnel ou un système de santé, du plus récent au plus "
                    "ancien. Les accès en urgence sont mis en évidence.",
    "Professional (national id)": "Professionnel (identifiant national)",
    "Emergency accesses only": "Accès en urgence seulement",
    "Also show my own actions and technical operations": "Afficher aussi mes propres actions et les opérations "
                                                          "techniques",
    "No access matches.": "Aucun accès ne correspond.",
    "Only this person's accesses": "Ses accès seulement",
    "Refused": "Refusé",
    "Most recent accesses": "Accès les plus récents",
    "Older accesses": "Accès plus anciens",
    "This is the first access to your record.": "C'est le premier accès à votre dossier.",
    "Invalid date or page.": "Date ou page invalide.",
    "You": "Vous",
    "a health system": "un système de santé",
    "untitled document": "document sans titre",
    "the document “{title}” of {date}": "le document « {title} » du {date}",
    "the document “{title}”": "le document « {title} »",
    "searched your record": "a consulté / a recherché dans votre dossier",
    "downloaded {document}": "a téléchargé {document}",
    "downloaded a document": "a téléchargé un document",
    "added {document}": "a ajouté {document}",
    "added a document": "a ajouté un document",
    "emergency access: {reason}": "accès en urgence : {reason}",
    "emergency access": "accès en urgence",
    "was refused access to your record": "s'est vu refuser l'accès à votre dossier",
    "read the access history of your record": "a consulté l'historique des accès à votre dossier",
    "read who may access your record": "a consulté les autorisations de votre dossier",
    "changed who may access your record": "a modifié les autorisations de votre dossier",
    "logged in": "s'est connecté(e)",
    "technical operation on your record": "opération technique sur votre dossier",
    "The 15-character INS (e.g. 180021234567836) or the full identifier (e.g. "
    "180021234567836^^^&1.2.250.1.213.1.4.8&ISO^NH).":
        "L'INS à 15 caractères (par ex. 180021234567836) ou l'identifiant complet (par ex. "
        "180021234567836^^^&1.2.250.1.213.1.4.8&ISO^NH).",
    "“{value}” is not a patient identifier: give the 15-character INS or the full identifier id^^^&authority&ISO.":
        "« {value} » n'est pas un identifiant de patient : saisissez l'INS à 15 caractères ou l'identifiant "
        "complet id^^^&autorité&ISO.",
    "An INS has 15 characters (13 for the number, 2A or 2B for Corsica, then a 2-digit key); “{value}” has {count}.":
        "Un INS a 15 caractères (13 pour le numéro, 2A ou 2B pour la Corse, puis une clé de 2 chiffres) ; "
        "« {value} » en a {count}.",
    "The check key of INS {value} is wrong: it should be {key:02d}. Check the number typed.":
        "La clé de contrôle de l'INS {value} est fausse : elle devrait être {key:02d}. Vérifiez le numéro saisi.",
    "This patient has no DMP record: there is nothing to consult.":
        "Ce patient n'a pas de DMP : il n'y a rien à consulter.",
    "This patient's record is closed: it can no longer be consulted.":
        "Le dossier de ce patient est fermé : il ne peut plus être consulté.",
    "The patient has blocked your access to her record. Emergency access is not possible either.":
        "Le patient a bloqué votre accès à son dossier. L'accès en urgence n'est pas possible non plus.",
    "You are not authorised by the patient, and the patient has opposed emergency access (break-glass) to her "
    "record.": "Vous n'êtes pas autorisé par le patient, et le patient s'est opposé à l'accès en urgence "
               "(bris de glace) à son dossier.",
    "You are not among the professionals the patient authorised.":
        "Vous ne faites pas partie des professionnels autorisés par le patient.",
    "INS": "INS",
    "Sex": "Sexe",
    "Female": "Féminin",
    "Male": "Masculin",
    "Unknown": "Inconnu",
    "Identity": "Identité",
    "As the documents of the record name the patient.": "Telle que les documents du dossier nomment le patient.",
    "No document you may see names this patient's identity.":
        "Aucun document qui vous est accessible n'indique l'identité de ce patient.",
    "Confirm": "Confirmer",
    "Cancel": "Annuler",
    "Mask “{title}” from professionals?": "Masquer « {title} » aux professionnels ?",
    "Unmask “{title}”?": "Démasquer « {title} » ?",
    "The professionals you authorised will no longer see this document. Your treating physician and its author "
    "still will, and you can unmask it at any time.":
        "Les professionnels que vous avez autorisés ne verront plus ce document. Votre médecin traitant et son "
        "auteur le verront toujours, et vous pouvez le démasquer à tout moment.",
    "The professionals you authorised will see this document again.":
        "Les professionnels que vous avez autorisés verront de nouveau ce document.",
    "Disclose “{title}” to the patient?": "Rendre « {title} » visible au patient ?",
    "The patient will see this document in her record. This cannot be undone from the portal.":
        "Le patient verra ce document dans son dossier. Cela ne peut pas être annulé depuis le portail.",
    "In an emergency, a professional you have not authorised will be able to read your record. Every such access "
    "is recorded and shown in your access history.":
        "En cas d'urgence, un professionnel que vous n'avez pas autorisé pourra consulter votre dossier. Chacun de "
        "ces accès est tracé et apparaît dans votre historique des accès.",
    "In an emergency, a professional you have not authorised will not be able to read your record, even if you "
    "cannot consent.": "En cas d'urgence, un professionnel que vous n'avez pas autorisé ne pourra pas consulter "
                       "votre dossier, même si vous ne pouvez pas donner votre accord.",
    "The emergency call centre (centre 15) will be able to read your record when it handles a call about you. "
    "Every such access is recorded and shown in your access history.":
        "Le centre de régulation (centre 15) pourra consulter votre dossier lorsqu'il traite un appel vous "
        "concernant. Chacun de ces accès est tracé et apparaît dans votre historique des accès.",
    "The emergency call centre (centre 15) will not be able to read your record.":
        "Le centre de régulation (centre 15) ne pourra pas consulter votre dossier.",
    "Allow: {title}?": "Autoriser : {title} ?",
    "Oppose: {title}?": "S'opposer : {title} ?",
    "your treating physician": "votre médecin traitant",
    "Authorise {title}?": "Autoriser {title} ?",
    "{title} will be able to read the documents of your record, except those you mask.":
        "{title} pourra consulter les documents de votre dossier, sauf ceux que vous masquez.",
    "Block {title}?": "Bloquer {title} ?",
    "{title} will no longer be able to read your record, not even in an emergency. You can unblock them at any time.":
        "{title} ne pourra plus consulter votre dossier, même en cas d'urgence. Vous pourrez le débloquer à tout "
        "moment.",
    "Withdraw the authorisation of {title}?": "Retirer l'autorisation de {title} ?",
    "{title} will no longer be able to read your record, except in an emergency if you allow emergency access.":
        "{title} ne pourra plus consulter votre dossier, sauf en urgence si vous autorisez l'accès en urgence.",
    "Withdraw the authorisation": "Retirer l'autorisation",
    "Unblock {title}?": "Débloquer {title} ?",
    "{title} is no longer blocked: they can read your record only if you authorise them, or in an emergency if you "
    "allow emergency access.": "{title} ne sera plus bloqué : il ne pourra consulter votre dossier que si vous "
                               "l'autorisez, ou en urgence si vous autorisez l'accès en urgence.",
    "Unblock": "Débloquer",
    "Make {title} your treating physician?": "Désigner {title} comme médecin traitant ?",
    "{title} will be able to read all your documents, including those you mask from professionals.":
        "{title} pourra consulter tous vos documents, y compris ceux que vous masquez aux professionnels.",
    "Remove {title} as treating physician?": "Retirer {title} comme médecin traitant ?",
    "{title} will no longer be your treating physician and will no longer see the documents you mask.":
        "{title} ne sera plus votre médecin traitant et ne verra plus les documents que vous masquez.",
    "They may read the documents of your record, except those you mask.":
        "Ils peuvent consulter les documents de votre dossier, sauf ceux que vous masquez.",
    "They may not read your record, not even in an emergency.":
        "Ils ne peuvent pas consulter votre dossier, même en cas d'urgence.",
    "Your treating physician may read all your documents, including those you mask.":
        "Votre médecin traitant peut consulter tous vos documents, y compris ceux que vous masquez.",
    "Whether a professional you have not authorised may read your record in an emergency. Every such access is "
    "shown in your access history.": "Un professionnel que vous n'avez pas autorisé peut-il consulter votre "
                                     "dossier en cas d'urgence ? Chacun de ces accès apparaît dans votre historique "
                                     "des accès.",
    "This browser cannot show the PDF in the page.": "Ce navigateur ne peut pas afficher le PDF dans la page.",
    "Open the PDF": "Ouvrir le PDF",
}


def translator(lang: str):
    table = FR if lang == "fr" else {}

    def _(text: str) -> str:
        return table.get(text, text)
    return _
