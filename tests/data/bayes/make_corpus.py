#!/usr/bin/python3
"""Make the small spam/ham corpus the Bayes test learns from and is judged
on (tests/unit/test_spam_bayes_corpus.c).

Everything here was written for toaster: sentence templates per kind of
mail, word lists for the slots, and a seeded random generator, so the same
script always writes the same files. Nothing is copied from real mail or
from another corpus.

    train/spam/000.eml .. 119.eml   learned as spam
    train/ham/000.eml  .. 119.eml   learned as ham
    test/spam/000.eml  .. 019.eml   held out, never learned
    test/ham/000.eml   .. 019.eml

Spam: pharmacy, crypto investment, fake invoices, phishing (bank, mailbox,
parcel), lottery and prize, loans, business email compromise ("urgent
wire transfer"). Ham: project mail (reviews, releases, bugs), family, real
receipts, newsletters people subscribed to, meeting notes, genuine account
notices (password changed, statement ready, hosting invoice) that read
much like phishing. Both sides share words (invoice, payment, account, order, update,
meeting) so the classifier has to weigh, not just spot. Most messages are
text/plain; some are HTML only (more often spam) and some
multipart/alternative. Held-out messages come from the same kinds of mail
but with their own random draws (a separate seed), so no held-out message
is a copy of a learned one.

Run: /usr/bin/python3 tests/data/bayes/make_corpus.py  (rewrites the files)
"""

import random
import shutil
import textwrap
from pathlib import Path

HERE = Path(__file__).resolve().parent

FIRST = ["Anna", "Ben", "Chloe", "David", "Elena", "Farid", "Greta", "Hugo", "Ines", "Jonas",
         "Kasia", "Liam", "Maya", "Nils", "Olga", "Pedro", "Rosa", "Sami", "Tara", "Umar",
         "Vera", "Wim", "Yusuf", "Zoe"]
LAST = ["Berger", "Costa", "Dubois", "Eriksen", "Fischer", "Garcia", "Hansen", "Ivanova",
        "Jensen", "Kowalski", "Lindqvist", "Moreau", "Novak", "Okafor", "Petrov", "Quinn",
        "Rossi", "Schmidt", "Tanaka", "Visser"]
HAM_DOMAINS = ["example.org", "example.net", "example.com", "mail.example.org",
               "lists.example.net", "uni.example.edu"]
SPAM_DOMAINS = ["promo-deals.example", "securemail-check.example", "winners-club.example",
                "rx-discount.example", "coin-profit.example", "billing-notice.example",
                "fastloan-now.example", "account-verify.example", "bonus-pharm.example",
                "crypto-yield.example"]
WEEKDAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]


def pick(rng, items):
    return items[rng.randrange(len(items))]


# ---- spam ---------------------------------------------------------------------

SPAM = {
    "business": {
        "subjects": ["Urgent request", "Re: payment to supplier", "Quick favour needed",
                     "Proposal for your review", "Re: meeting follow-up", "Confidential"],
        "lines": [
            "Are you at your desk? I need you to handle an urgent wire transfer today.",
            "I am in a meeting and cannot talk, please reply by email only.",
            "Our supplier changed their bank, pay the pending invoice to the new account.",
            "Buy {count} gift cards for the client and send me the codes, I will refund you.",
            "Please keep this confidential until the deal is announced.",
            "Review the attached proposal and confirm the payment before end of day.",
            "Dear colleague, kindly treat this matter with priority.",
            "Send me your mobile number, I have a task for you.",
        ],
        "held_subjects": ["Re: urgent payment", "Are you available?"],
        "held": [
            "I need a payment of ${amount} processed quietly before the auditors arrive.",
            "The director asked me to contact you directly about a confidential transfer.",
            "Reply with the transfer confirmation as soon as it is done.",
        ],
        "fill": {},
    },
    "pharmacy": {
        "subjects": ["Cheap {drug} without prescription", "{pct}% off {drug} today only",
                     "Your discreet {drug} order", "Best prices on {drug} and {drug2}",
                     "Men's health: {drug} shipped overnight", "Re: your pharmacy discount"],
        "lines": [
            "Buy {drug} online at the lowest price, no prescription needed.",
            "Our licensed online pharmacy ships {drug} and {drug2} worldwide in discreet packaging.",
            "Save {pct}% on generic {drug}, {dose} mg pills, guaranteed quality.",
            "No doctor visit, no waiting room, just order {drug} from home.",
            "Satisfaction guaranteed or your money back, order {count} pills and get {count2} free.",
            "Top quality meds from certified suppliers, fast overnight delivery.",
            "Bulk discount: the more {drug} you buy the more you save.",
            "Trusted by thousands of happy customers, try {drug} risk free.",
            "Visit our secure pharmacy store and claim your bonus pills now.",
            "Limited stock of brand {drug} at generic prices, hurry.",
        ],
        "held_subjects": ["Refill your {drug} prescription here", "Pharmacy clearance sale"],
        "held": [
            "Stop overpaying at the chemist, our generic tablets cost a fraction.",
            "Every order of {drug} ships in plain packaging with tracking.",
            "Doctors hate this online shop, pills from {dose} mg at wholesale prices.",
            "Reorder in one click, your cart with {drug} is waiting.",
        ],
        "fill": {"drug": ["Viagra", "Cialis", "Levitra", "Xanax", "Valium", "Tramadol",
                          "Phentermine", "Ambien"],
                 "drug2": ["Propecia", "Soma", "Kamagra", "Modafinil", "Diazepam"]},
    },
    "crypto": {
        "subjects": ["Turn ${amount} into ${amount2} with {coin}", "{coin} is about to explode",
                     "Last chance: {coin} presale bonus", "Guaranteed {pct}% daily returns",
                     "Your {coin} wallet has pending profits", "Secret trading bot revealed"],
        "lines": [
            "Our automated trading bot earns {pct}% profit every single day with {coin}.",
            "Early investors in {coin} turned ${amount} into ${amount2} in weeks.",
            "Join the exclusive presale now and receive a {pct}% token bonus.",
            "Zero risk, guaranteed returns, withdraw your profits any time.",
            "Celebrities and billionaires are quietly buying {coin} before the launch.",
            "Deposit as little as ${amount} to activate your investment account.",
            "Your pending profits of {amount2} USDT expire in {hours} hours, confirm your wallet.",
            "Financial freedom is one click away, the market will not wait for you.",
            "Send your deposit to our wallet address and watch your balance grow.",
            "This opportunity is limited to the first {count} members, act now.",
        ],
        "held_subjects": ["{coin} holders are getting rich", "Passive income with {coin}"],
        "held": [
            "Our members doubled their deposit last month without lifting a finger.",
            "The algorithm trades {coin} while you sleep and pays out daily profits.",
            "Withdraw your earnings instantly to any wallet, no risk involved.",
            "Only {count} investor slots are left in this round.",
        ],
        "fill": {"coin": ["Bitcoin", "Ethereum", "DOGE", "MoonToken", "SafeYield", "Solana"]},
    },
    "invoice": {
        "subjects": ["Invoice #{ref} overdue", "Payment required: invoice {ref}",
                     "Unpaid invoice - final notice", "Your invoice {ref} is attached",
                     "Outstanding balance ${amount}", "Re: invoice {ref} payment failed"],
        "lines": [
            "Please find attached your overdue invoice #{ref} for ${amount}.",
            "Payment of ${amount} has failed, update your billing details immediately.",
            "Failure to pay within {hours} hours will result in legal action and extra fees.",
            "Open the attached document and enable editing to view the invoice.",
            "Your account has been suspended until the outstanding balance is settled.",
            "Kindly remit payment to the new bank account listed in the attachment.",
            "This is the final notice before we transfer the debt to a collection agency.",
            "Click the secure link to review and pay invoice {ref} now.",
            "Our records show an unpaid balance of ${amount} on your account.",
            "Confirm the wire transfer today to avoid service interruption.",
        ],
        "held_subjects": ["Overdue payment reminder {ref}", "Billing problem with your account"],
        "held": [
            "Our accounts department has not received your payment for invoice {ref}.",
            "Download the attached file and enable macros to read the statement.",
            "Late fees of ${small} per day apply until the balance is paid.",
            "Transfer the amount due to the updated bank details in the attachment.",
        ],
        "fill": {},
    },
    "phishing": {
        "subjects": ["Your {bank} account has been locked", "Unusual sign-in activity detected",
                     "Action required: verify your mailbox", "Your parcel could not be delivered",
                     "Security alert for your {bank} account", "Password expires today"],
        "lines": [
            "We detected unusual sign-in activity on your {bank} account from a new device.",
            "To restore full access, verify your identity within {hours} hours.",
            "Click the link below and confirm your username, password and card number.",
            "Your mailbox storage is full and incoming messages are being rejected.",
            "Failure to verify will result in permanent suspension of your account.",
            "Your parcel is held at our depot, pay the customs fee of ${small} to release it.",
            "Log in through our secure verification portal to keep your account active.",
            "Dear valued customer, your password will expire today.",
            "For your security, we have temporarily limited your online banking.",
            "Update your billing information to avoid losing access.",
        ],
        "held_subjects": ["Confirm your {bank} details", "Delivery attempt failed"],
        "held": [
            "Someone tried to access your {bank} account, confirm it was you.",
            "Your account access will be revoked unless you confirm your details today.",
            "Enter your card number and security code on the verification page.",
            "The courier could not deliver your package, reschedule and pay the fee.",
        ],
        "fill": {"bank": ["PayPal", "Chase", "Barclays", "Wells Fargo", "Apple ID",
                          "Microsoft 365", "Netflix"]},
    },
    "lottery": {
        "subjects": ["Congratulations, you have won ${amount2}", "WINNER notification #{ref}",
                     "Claim your prize before it expires", "You were selected for a free {prize}",
                     "Final reminder: unclaimed prize", "Your lucky number was drawn"],
        "lines": [
            "Congratulations! Your email address won ${amount2} in our international lottery.",
            "You have been selected to receive a brand new {prize} absolutely free.",
            "To claim your prize, reply with your full name, address and phone number.",
            "A small processing fee of ${small} is required to release the winnings.",
            "Your lucky ticket number {ref} was drawn in this month's jackpot.",
            "This prize will be forfeited if not claimed within {hours} hours.",
            "Keep this notification confidential until your claim is processed.",
            "Our claims agent will transfer the funds to your bank account.",
            "You are one of only {count} winners chosen at random worldwide.",
            "Complete the short survey to collect your reward now.",
        ],
        "held_subjects": ["Official prize award letter", "You are our lucky winner"],
        "held": [
            "Your email was chosen in the online sweepstakes draw, you won ${amount2}.",
            "Send the release fee of ${small} so our agent can transfer your winnings.",
            "The reward includes a free {prize} and a cash bonus.",
            "Do not tell anyone about this award until the money is in your account.",
        ],
        "fill": {"prize": ["iPhone", "MacBook", "gift card", "cruise", "Samsung TV",
                           "vacation package"]},
    },
    "loan": {
        "subjects": ["Pre-approved loan of ${amount2}", "Bad credit? No problem",
                     "Cash in your account in {hours} hours", "Lowest rate guaranteed",
                     "Consolidate your debt today", "You qualify for instant cash"],
        "lines": [
            "You are pre-approved for a personal loan of up to ${amount2}, no credit check.",
            "Bad credit, no credit, no problem: instant approval guaranteed.",
            "Get cash deposited into your account within {hours} hours.",
            "Consolidate all your debt into one low monthly payment.",
            "Rates as low as {pct}% for a limited time, apply in minutes.",
            "No paperwork, no hidden fees, no questions asked.",
            "Thousands of customers already got their money fast.",
            "Fill in the quick form and our lenders compete for you.",
        ],
        "held_subjects": ["Instant loan decision", "Money problems? Get cash today"],
        "held": [
            "Borrow up to ${amount2} today, approval in minutes even with bad credit.",
            "Our lenders guarantee approval, the cash is in your account by tomorrow.",
            "No credit check and no paperwork, apply with one quick form.",
        ],
        "fill": {},
    },
}

SPAM_OPENERS = ["Dear Customer,", "Dear friend,", "Hello,", "Attention!", "Dear Sir/Madam,",
                "Hi there,", "Dear valued member,", "URGENT:", ""]
SPAM_CLOSERS = ["Click here now: {url}", "Act now: {url}", "Order here: {url}",
                "Verify here: {url}", "Claim now at {url}", "Visit {url} today"]
SPAM_FOOTERS = ["To unsubscribe reply REMOVE.", "You received this because you opted in.",
                "This is not spam, you are on our list.", "Copyright all rights reserved.",
                "If you no longer wish to receive offers click here.", ""]

# ---- ham ------------------------------------------------------------------------

HAM = {
    "account": {
        "subjects": ["Your password was changed", "New sign-in to your account",
                     "Your monthly statement is ready", "Your hosting invoice {ref}",
                     "Security update for your account", "Verify your email address"],
        "lines": [
            "The password for your account on the project wiki was changed on {weekday}.",
            "If you made this change, you can ignore this email.",
            "We noticed a new sign-in from Firefox on Linux near your usual location.",
            "Your monthly statement for the savings account is ready in online banking.",
            "The invoice for your hosting plan, {amount} EUR, will be paid by direct debit.",
            "We never ask for your password or card number by email.",
            "Two-factor authentication is now available, you can turn it on in settings.",
            "Please confirm your email address to finish creating your account.",
            "Your payment method on file expires next month, you can update it any time.",
        ],
        "held_subjects": ["Your account details were updated", "Statement available"],
        "held": [
            "Your billing address was updated from the account settings page.",
            "A new device was added to your account, no action is needed if this was you.",
            "The annual fee of {amount} EUR will be charged on the usual card.",
        ],
        "fill": {},
    },
    "project": {
        "subjects": ["Re: [{proj}] review of the {module} patch", "[{proj}] release {ver} plan",
                     "Bug {ref}: {module} crashes on empty input", "[{proj}] CI is red again",
                     "Re: {module} refactoring", "Draft design notes for {module}"],
        "lines": [
            "I had a look at your patch for the {module} module, a few comments inline below.",
            "The tests pass locally but the CI job on the arm runner times out.",
            "Could you split the commit so the rename is separate from the fix?",
            "We should tag {ver} on {weekday} if nobody objects to the changelog.",
            "The crash comes from a missing length check when the buffer is empty.",
            "I pushed a branch with the benchmark numbers, the parser is about {pct}% faster.",
            "Let's keep the old configuration key for one more release and warn about it.",
            "The reviewer asked for a regression test, I added one under tests/{module}.",
            "Thanks for the quick turnaround, merging after lunch.",
            "Does anyone remember why we pinned that library version?",
            "I updated the documentation for the {module} options and fixed two typos.",
            "The memory leak only shows up under valgrind with the debug build.",
        ],
        "held_subjects": ["Re: [{proj}] flaky test in {module}", "[{proj}] branch cleanup"],
        "held": [
            "The flaky test in {module} fails about once in twenty runs on the slow runner.",
            "I rebased the branch on main and resolved the conflict in the header.",
            "Can someone review the pull request before the freeze on {weekday}?",
            "The profiler shows most of the time goes into copying the buffer twice.",
        ],
        "fill": {"proj": ["toaster", "parsekit", "nightjar", "orca-build", "fernlib"],
                 "module": ["parser", "scheduler", "config", "storage", "logging", "network",
                            "indexer"],
                 "ver": ["1.4.0", "2.0-rc1", "0.9.3", "3.1.2", "1.12"]},
    },
    "family": {
        "subjects": ["Sunday lunch at {relative}'s", "Photos from the {place} trip",
                     "Re: {child}'s birthday", "Are you coming for the holidays?",
                     "Grandma's recipe", "Quick question about the weekend"],
        "lines": [
            "Are you still coming on Sunday? {relative} is making the lasagne again.",
            "I uploaded the photos from {place}, the ones at the lake came out lovely.",
            "{child} wants a bike for the birthday, do you think that is too much?",
            "Can you pick up the kids from school on {weekday}, I have a late meeting.",
            "Mum called, she says the garden is full of tomatoes this year.",
            "We booked the train tickets, arriving around {hour} in the afternoon.",
            "Don't forget to bring the board games, the cousins loved them last time.",
            "The dog was at the vet today, nothing serious, just a sore paw.",
            "Here is grandma's recipe: flour, butter, a pinch of salt and lots of patience.",
            "Love you, call me when you get home.",
            "Dad fixed the leaking tap himself, he is very proud of it.",
        ],
        "held_subjects": ["Visiting {relative} next week", "Re: holiday plans"],
        "held": [
            "{relative} asked if you could bring the old photo albums when you visit.",
            "The kids made a cake for {child} and the kitchen is a disaster.",
            "We will drive up on {weekday} morning, save us some coffee.",
            "Grandpa is feeling better and sends his love to everyone.",
        ],
        "fill": {"relative": ["Aunt Ruth", "Uncle Tom", "Grandma", "Mum", "Dad", "Marta"],
                 "child": ["Lena", "Max", "Emil", "Sofia", "Noah"],
                 "place": ["Lisbon", "mountain", "seaside", "Krakow", "camping"]},
    },
    "receipt": {
        "subjects": ["Your order {ref} has shipped", "Receipt for your purchase at {shop}",
                     "Your {shop} invoice {ref}", "Order confirmation {ref}",
                     "Your booking at {shop} is confirmed", "Payment received, thank you"],
        "lines": [
            "Thank you for your order at {shop}. Order number {ref}.",
            "Items: {item}, quantity {count}, total {amount} EUR including VAT.",
            "Your parcel was handed to the carrier and should arrive on {weekday}.",
            "The invoice for this order is available in your customer account.",
            "We charged {amount} EUR to the card ending in {last4}.",
            "If something is wrong with your order, reply to this message within 30 days.",
            "Your booking for {count} nights is confirmed, check-in from {hour}:00.",
            "Tracking number: {ref}, you can follow the delivery on the carrier's site.",
            "This receipt is for your records, no action is needed.",
            "Payment received for invoice {ref}, thank you.",
        ],
        "held_subjects": ["Your {shop} order is on its way", "Refund processed for order {ref}"],
        "held": [
            "Your refund of {amount} EUR for order {ref} was sent to the original card.",
            "The courier will deliver your {item} between {hour}:00 and 18:00.",
            "Keep this email as proof of purchase for the warranty.",
            "You can download the invoice as a PDF from your account page.",
        ],
        "fill": {"shop": ["the bookshop", "Bike Corner", "GreenGrocer", "the train company",
                          "City Hotel", "the hardware store", "OutdoorLand"],
                 "item": ["bicycle lights", "a novel", "hiking boots", "a kettle",
                          "garden hose", "a keyboard"]},
    },
    "newsletter": {
        "subjects": ["{news} weekly: issue {num}", "This month at the {club}",
                     "{news}: kernel and toolchain news", "New books at the library",
                     "{club} newsletter - {month}", "Your {news} digest"],
        "lines": [
            "This week: a look at the new filesystem features and a toolchain update.",
            "The {club} meets again on {weekday} evening, newcomers are welcome.",
            "The library added {count} new titles, including a history of cartography.",
            "Our volunteers repaired {count} bicycles at the last repair cafe.",
            "Conference talks are now online, the slides are linked from each abstract.",
            "A reader asked about backups; here is how we do it with rsync and snapshots.",
            "The choir is looking for tenors, rehearsals are on {weekday}.",
            "You are receiving this because you subscribed at the {club} website.",
            "Next issue will cover compilers, memory safety and the new release of {proj}.",
            "Thanks to all members who renewed their subscription this year.",
        ],
        "held_subjects": ["{news}: what happened this week", "{club}: spring programme"],
        "held": [
            "In this issue: a tour of the new scheduler and notes from the maintainers summit.",
            "The {club} is organising a night walk, bring warm clothes and a torch.",
            "Members can now borrow telescopes and sewing machines from the library.",
            "Our annual general meeting is on {weekday}, the agenda is on the website.",
        ],
        "fill": {"news": ["Kernel Notes", "The Open Source Gazette", "Dev Digest",
                          "Compiler Corner"],
                 "club": ["astronomy club", "cycling club", "community garden",
                          "chess society", "local library"],
                 "proj": ["toaster", "parsekit", "fernlib"]},
    },
    "meeting": {
        "subjects": ["Notes from the {weekday} meeting", "Agenda for the {team} sync",
                     "Re: meeting minutes {date}", "Action items from today's call",
                     "{team} planning: next quarter", "Moving the standup to {hour}:30"],
        "lines": [
            "Attendees: {name}, {name2} and the rest of the {team} team.",
            "Decisions: we move the migration to next sprint and freeze features on {weekday}.",
            "Action item: {name} updates the budget spreadsheet before Friday.",
            "Action item: {name2} writes the draft of the customer report.",
            "We reviewed the roadmap and agreed to drop the mobile prototype for now.",
            "Open question: do we need another server for the staging environment?",
            "Next meeting is on {weekday} at {hour}:00 in the small room.",
            "The minutes from last week were approved without changes.",
            "Please add your topics to the agenda document before the call.",
            "Budget is on track, travel costs were lower than planned.",
        ],
        "held_subjects": ["Minutes: {team} retrospective", "Follow-up from the {team} review"],
        "held": [
            "In the retrospective we agreed the release checklist needs an owner.",
            "{name} will collect the feedback from the support tickets by {weekday}.",
            "We postponed the budget discussion until the numbers from finance arrive.",
            "The next review is in two weeks, same room, same time.",
        ],
        "fill": {"team": ["platform", "design", "support", "research", "finance"]},
    },
}

HAM_OPENERS = ["Hi {first},", "Hello {first},", "Dear {first},", "Hi all,", "Hey,", "{first},",
               "Good morning,", ""]
HAM_CLOSERS = ["Cheers,\n{me}", "Best regards,\n{me}", "Thanks,\n{me}", "Love,\n{me}",
               "See you soon,\n{me}", "-- \n{me}"]


# Sentences of ordinary mail that spam borrows too.
NEUTRAL = [
    "Please let me know if you have any questions.",
    "Thank you for your time.",
    "I hope this message finds you well.",
    "Reply to this email if you need more information.",
    "Have a nice weekend.",
    "Sorry for the late reply.",
    "See the details below.",
]


def fill(rng, text, extra):
    values = {
        "amount": str(rng.choice([49, 99, 150, 250, 480, 1200, 2500])),
        "amount2": "{:,}".format(rng.choice([10000, 50000, 250000, 1000000, 2500000])),
        "small": "%d.%02d" % (rng.randrange(1, 10), rng.randrange(100)),
        "pct": str(rng.choice([5, 12, 30, 45, 70, 80, 90])),
        "dose": str(rng.choice([20, 50, 100])),
        "count": str(rng.randrange(2, 40)),
        "count2": str(rng.randrange(2, 12)),
        "hours": str(rng.choice([12, 24, 48, 72])),
        "hour": str(rng.randrange(8, 18)),
        "ref": "%s%d" % (rng.choice(["", "INV-", "A", "N"]), rng.randrange(10000, 999999)),
        "num": str(rng.randrange(10, 300)),
        "last4": "%04d" % rng.randrange(10000),
        "weekday": pick(rng, ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday"]),
        "month": pick(rng, ["January", "March", "May", "July", "September", "November"]),
        "date": "%d %s" % (rng.randrange(1, 29), pick(rng, MONTHS)),
        "name": pick(rng, FIRST),
        "name2": pick(rng, FIRST),
        "drug": "", "drug2": "", "coin": "", "bank": "", "prize": "",
    }
    for key, choices in extra.items():
        values[key] = pick(rng, choices)
    out = text
    # Replace each {slot} one at a time so repeated slots can differ.
    while "{" in out:
        start = out.index("{")
        end = out.index("}", start)
        key = out[start + 1:end]
        value = values[key]
        out = out[:start] + value + out[end + 1:]
    return out


def html_of(paragraphs, url, spammy):
    body = []
    for p in paragraphs:
        text = p.replace("&", "&amp;").replace("<", "&lt;").replace("\n", "<br>")
        if spammy and len(body) == 1:
            body.append('<p><b><font color="red" size="5">%s</font></b></p>' % text)
        else:
            body.append("<p>%s</p>" % text)
    if url:
        body.append('<p><a href="%s">%s</a></p>' % (url, "Click here" if spammy else url))
    return ("<html><head><meta charset=\"utf-8\"></head><body>\n" + "\n".join(body)
            + "\n</body></html>\n")


def crlf(text):
    return text.replace("\r\n", "\n").replace("\n", "\r\n")


def message(rng, is_spam, serial, stream, held_out):
    kinds = SPAM if is_spam else HAM
    kind_name = sorted(kinds)[serial % len(kinds)]
    kind = kinds[kind_name]
    extra = kind["fill"]
    first = pick(rng, FIRST)
    to_addr = "%s.%s@%s" % (first.lower(), pick(rng, LAST).lower(), pick(rng, HAM_DOMAINS))
    if is_spam:
        sender_name = pick(rng, ["Customer Service", "Billing Department", "Security Team",
                                 "Claims Office", "Pharmacy Support", "Investment Desk",
                                 "Account Services", "Prize Committee"])
        # Some spam comes from hijacked accounts at ordinary domains.
        domain = pick(rng, SPAM_DOMAINS if rng.random() < 0.8 else HAM_DOMAINS)
        from_addr = "%s@%s" % (pick(rng, ["info", "support", "noreply", "alert", "billing",
                                           "service", "promo"]), domain)
        url = "http://%s/%s?id=%d" % (pick(rng, SPAM_DOMAINS),
                                      pick(rng, ["claim", "verify", "order", "login", "pay"]),
                                      rng.randrange(100000, 999999))
    else:
        me_first, me_last = pick(rng, FIRST), pick(rng, LAST)
        sender_name = "%s %s" % (me_first, me_last)
        domain = pick(rng, HAM_DOMAINS)
        from_addr = "%s.%s@%s" % (me_first.lower(), me_last.lower(), domain)
        url = ("https://%s/%s" % (pick(rng, HAM_DOMAINS),
                                  pick(rng, ["orders", "archive", "photos", "wiki", "issues"]))
               if rng.random() < 0.4 else "")

    # Held-out mail takes about half its sentences (and half its subjects)
    # from lines no learned message has.
    subjects = kind["subjects"] + (kind["held_subjects"] if held_out else [])
    subject = fill(rng, pick(rng, subjects), extra)
    lines = list(kind["lines"])
    rng.shuffle(lines)
    count = rng.randrange(4, 8)
    if held_out:
        held = list(kind["held"])
        rng.shuffle(held)
        lines = held[:count // 2 + 1] + lines[:count - count // 2 - 1]
        rng.shuffle(lines)
    lines = lines[:count]
    if rng.random() < 0.5:
        lines.insert(rng.randrange(len(lines) + 1), pick(rng, NEUTRAL))
    body_lines = [fill(rng, line, extra) for line in lines]
    paragraphs = []
    opener = fill(rng, pick(rng, SPAM_OPENERS if is_spam else HAM_OPENERS).replace(
        "{first}", first), extra)
    if opener:
        paragraphs.append(opener)
    # Two or three paragraphs of sentences.
    cut = rng.randrange(1, len(body_lines))
    paragraphs.append(" ".join(body_lines[:cut]))
    paragraphs.append(" ".join(body_lines[cut:]))
    if is_spam:
        paragraphs.append(fill(rng, pick(rng, SPAM_CLOSERS).replace("{url}", url), extra))
        footer = pick(rng, SPAM_FOOTERS)
        if footer:
            paragraphs.append(footer)
    else:
        if url:
            paragraphs.append("More at %s" % url)
        paragraphs.append(pick(rng, HAM_CLOSERS).replace("{me}", sender_name.split()[0]))

    day = rng.randrange(1, 29)
    date = "%s, %02d %s 2026 %02d:%02d:%02d +0000" % (
        pick(rng, WEEKDAYS), day, pick(rng, MONTHS), rng.randrange(24), rng.randrange(60),
        rng.randrange(60))
    msgid = "<%s.%d.%d@%s>" % (stream, serial, rng.randrange(10**9), domain)
    headers = [
        "From: %s <%s>" % (sender_name, from_addr),
        "To: %s" % to_addr,
        "Subject: %s" % subject,
        "Date: %s" % date,
        "Message-ID: %s" % msgid,
        "MIME-Version: 1.0",
    ]
    if not is_spam and kind_name == "newsletter":
        headers.append("List-Id: <news.%s>" % domain)
        headers.append("List-Unsubscribe: <mailto:leave@%s>" % domain)

    # Format: HTML only for about a third of spam and a few ham newsletters,
    # multipart/alternative for some of both, the rest plain text.
    roll = rng.random()
    html_only = roll < (0.35 if is_spam else (0.3 if kind_name == "newsletter" else 0.0))
    alternative = not html_only and roll < (0.55 if is_spam else 0.2)
    text = "\n\n".join("\n".join(textwrap.fill(line, 72) for line in p.split("\n"))
                       for p in paragraphs) + "\n"
    if html_only:
        headers.append('Content-Type: text/html; charset="utf-8"')
        body = html_of(paragraphs, url, is_spam)
    elif alternative:
        boundary = "=_b%08x" % rng.randrange(1 << 32)
        headers.append('Content-Type: multipart/alternative; boundary="%s"' % boundary)
        body = ("This is a multi-part message in MIME format.\n\n"
                "--%s\nContent-Type: text/plain; charset=\"utf-8\"\n\n%s\n"
                "--%s\nContent-Type: text/html; charset=\"utf-8\"\n\n%s\n--%s--\n"
                % (boundary, text, boundary, html_of(paragraphs, url, is_spam), boundary))
    else:
        headers.append('Content-Type: text/plain; charset="utf-8"')
        body = text
    return crlf("\n".join(headers) + "\n\n" + body)


def write_set(directory, is_spam, count, seed, stream):
    held_out = stream == "test"
    rng = random.Random(seed)
    directory.mkdir(parents=True, exist_ok=True)
    for serial in range(count):
        (directory / ("%03d.eml" % serial)).write_bytes(
            message(rng, is_spam, serial, stream, held_out).encode("utf-8"))


def main():
    for sub in ("train", "test"):
        if (HERE / sub).exists():
            shutil.rmtree(HERE / sub)
    write_set(HERE / "train" / "spam", True, 120, 20261204, "train")
    write_set(HERE / "train" / "ham", False, 120, 20261205, "train")
    write_set(HERE / "test" / "spam", True, 20, 7331, "test")
    write_set(HERE / "test" / "ham", False, 20, 7332, "test")


if __name__ == "__main__":
    main()
