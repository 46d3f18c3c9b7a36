"""Python's multiprocessing.Manager, the CSP way, on cspp.

    with multiprocessing.Manager() as manager:
        records = manager.list([('Computers', 1), ('Histoty', 5), ('Hindi', 9)])
        p1 = Process(target=insert_record, args=(('English', 3), records))
        p2 = Process(target=print_records, args=(records,))
        p1.start(); p1.join(); p2.start(); p2.join()

A Manager is a server process that owns the list; the proxy's methods send it
requests. Here the server is a forked OS process that owns a list and alts
over two request channels: `appends` (a record to add) and `asks` (answered
with the whole list on `answers`). Sequence runs p1 to its end before p2
starts; when every client end has retired, the server's choice ends.

Prints what the tutorial prints: "A New record is added", then the four
records, each as "Name: ...", "Score: ..." and a blank line.
"""
from cspp.pycsp import *


@multiprocess
def server(records, appends, asks, answers):
    try:
        while True:
            g, value = AltSelect(InputGuard(appends), InputGuard(asks))
            if g is appends:
                records.append(value)
            else:
                answers(list(records))
    except ChannelRetireException:
        retire(answers)


@process
def insert_record(record, appends):
    appends(record)
    print("A New record is added\n")
    retire(appends)


@process
def print_records(asks, answers):
    asks(None)
    for record in answers():
        print("Name: {0}\nScore: {1}\n".format(record[0], record[1]))
    retire(asks, answers)


@process
def clients(appends, asks, answers):
    Sequence(insert_record(('English', 3), appends), print_records(asks, answers))


appends, asks, answers = Channel("appends"), Channel("asks"), Channel("answers")
Parallel(server([('Computers', 1), ('Histoty', 5), ('Hindi', 9)], +appends, +asks, -answers),
         clients(-appends, -asks, +answers))
